"""Training on the user's own labelled files, here English turned into opaque word ids."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.train.config import DEFAULT_CONFIG, load_train_config
from pipelines.train.data import load_training_data, load_training_files
from pipelines.train.run import train
from serving.errors import DatasetError
from serving.schema import Conversation, write_conversations
from serving.scorer import Scorer

runner = CliRunner()


def _as_word_ids(conversation: Conversation) -> Conversation:
    # Each word becomes an id the English reason descriptions never contain, as in a corpus of
    # another language or of desensitised token ids.
    turns = [turn.model_copy(update={"text": " ".join(
        f"w{zlib.crc32(word.lower().encode()) % 4000}" for word in turn.text.split())})
        for turn in conversation.turns]
    return conversation.model_copy(update={"turns": turns})


@pytest.fixture(scope="module")
def word_id_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("word-ids")
    bundled = load_training_data(seed=13)
    messages = [_as_word_ids(row) for role in ("train", "validation", "test")
                for row in bundled.messages[role][:1_000]]
    conversations = [_as_word_ids(row) for role in ("train", "validation", "test")
                     for row in bundled.conversations[role][:120]]
    write_conversations(messages, folder / "messages.jsonl")
    write_conversations(conversations, folder / "conversations.jsonl")
    return folder / "messages.jsonl", folder / "conversations.jsonl"


def test_token_bundle_trains_and_scores_word_ids(word_id_files: tuple[Path, Path],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = load_train_config(DEFAULT_CONFIG.parent / "train-tokens.yaml")
    config = config.model_validate({
        **config.model_dump(),
        "sentiment": {"c_grid": [2.0], "calibration_folds": 3, "max_train_examples": 0},
        "frustration": {"c_grid": [2.0], "calibration_folds": 3, "max_train_examples": 0},
        "escalation": {**config.escalation.model_dump(), "c_grid": [0.05],
                       "calibration_folds": 3},
    })
    messages, conversations = word_id_files
    data = load_training_files([messages], [conversations], seed=config.seed,
                               dissatisfied_rating=config.escalation.dissatisfied_rating)

    result = train(config, data, models_dir=tmp_path / "models", work_dir=tmp_path / "work",
                   bundle_name="word-ids")
    scored = Scorer(result.bundle_dir).score(data.conversations["test"][0])

    assert len(data.messages["train"]) == 2_400
    assert len(data.conversations["test"]) == 36
    assert result.metrics["frustration"]["model"]["roc_auc"] > 0.55
    assert 0.0 <= scored.decision.probability <= 1.0


def test_unlabelled_messages_name_the_split(word_id_files: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    _, conversations = word_id_files

    with pytest.raises(DatasetError, match="train split of the message files.*no customer turn "
                                           "labelled negative"):
        load_training_files([conversations], [conversations], seed=13, dissatisfied_rating=2)


def test_cli_needs_both_file_options(word_id_files: tuple[Path, Path]) -> None:
    messages, _ = word_id_files

    result = runner.invoke(app, ["train", "--messages", str(messages)])

    assert result.exit_code == 2
    assert "--messages and --conversations together" in result.output
