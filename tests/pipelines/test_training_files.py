"""Training on the user's own labelled files, here English turned into opaque word ids."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.datasets.splits import split_file_path
from pipelines.train.config import DEFAULT_CONFIG, load_train_config
from pipelines.train.data import (
    check_bundled_split,
    load_training_data,
    load_training_files,
    recorded_test_split,
)
from pipelines.train.run import TrainingData, train
from serving.errors import DatasetError, SchemaError
from serving.schema import Conversation, read_conversations, write_conversations
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
    _check_default_evaluation(result.bundle_dir, conversations)


def _check_default_evaluation(bundle_dir: Path, conversations: Path) -> None:
    # Without --data, evaluate rebuilds the test split of the bundle's own training files,
    # not the bundled English corpora.
    evaluated = runner.invoke(app, ["evaluate", "--bundle", str(bundle_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.output.strip().splitlines()[-1])
    assert metrics["escalation"]["n_conversations"] == 36

    # A changed training file cannot give the same split back, so the error names --data as the fix.
    original = conversations.read_bytes()
    try:
        conversations.write_bytes(original + b"\n")
        changed = runner.invoke(app, ["evaluate", "--bundle", str(bundle_dir)])
    finally:
        conversations.write_bytes(original)
    assert changed.exit_code != 0
    assert "changed since bundle" in str(changed.exception)
    assert "--data" in str(changed.exception)

    # Evaluating on a training file itself works, with a warning that the metrics are optimistic.
    on_training = runner.invoke(app, ["evaluate", "--bundle", str(bundle_dir), "--data",
                                      str(conversations)])
    assert on_training.exit_code == 0, on_training.output
    assert "include training conversations" in on_training.output


def test_relative_and_linked_inputs_are_checked(word_id_files: tuple[Path, Path],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    messages, conversations = word_id_files
    (tmp_path / "train").mkdir()
    copy = tmp_path / "train" / "conversations.jsonl"
    copy.write_bytes(conversations.read_bytes())
    link = tmp_path / "train" / "current.jsonl"
    link.symlink_to(copy)
    monkeypatch.chdir(tmp_path / "train")
    data = load_training_files([messages], [Path("current.jsonl")], seed=13,
                               dissatisfied_rating=2)
    expected = [row.id for row in data.messages["test"] + data.conversations["test"]]

    # From another folder, the recorded absolute path of the link's target is read.
    monkeypatch.chdir(tmp_path)
    rebuilt = recorded_test_split("user-bundle", data.fingerprint, dissatisfied_rating=2)
    assert rebuilt is not None
    assert [row.id for row in rebuilt] == expected

    # Editing the file trained on is caught, even with the link moved to an unchanged copy.
    unchanged = tmp_path / "unchanged.jsonl"
    unchanged.write_bytes(copy.read_bytes())
    copy.write_bytes(copy.read_bytes() + b"\n")
    link.unlink()
    link.symlink_to(unchanged)
    with pytest.raises(DatasetError, match="conversations.jsonl changed since bundle"):
        recorded_test_split("user-bundle", data.fingerprint, dissatisfied_rating=2)


def test_edited_split_seed_is_caught(word_id_files: tuple[Path, Path]) -> None:
    messages, conversations = word_id_files
    data = load_training_files([messages], [conversations], seed=13, dissatisfied_rating=2)

    with pytest.raises(DatasetError, match="split_seed or test ids were edited"):
        recorded_test_split("user-bundle", {**data.fingerprint, "split_seed": 14},
                            dissatisfied_rating=2)


def test_bundle_without_recorded_inputs_asks_for_data() -> None:
    with pytest.raises(DatasetError, match="does not record which .* pass the test data with "
                                           "--data"):
        recorded_test_split("old-bundle", {"files": {"m.jsonl": "0" * 64}, "split_seed": 13},
                            dissatisfied_rating=2)


def _recorded_training_data(path: Path) -> dict[str, Any]:
    # A manifest record that names `path` as both training files, with dummy hashes.
    entry = {"path": str(path), "sha256": "0" * 64}
    return {"files": {path.name: "0" * 64}, "split_seed": 13,
            "inputs": {"messages": [entry], "conversations": [entry],
                       "test_ids_sha256": "0" * 64}}


def test_missing_training_file_asks_for_data(tmp_path: Path) -> None:
    training_data = _recorded_training_data(tmp_path / "gone.jsonl")

    with pytest.raises(DatasetError, match="gone.jsonl, which no longer exists"):
        recorded_test_split("user-bundle", training_data, dissatisfied_rating=2)


def test_folder_in_place_of_file_is_named(tmp_path: Path) -> None:
    training_data = _recorded_training_data(tmp_path)

    with pytest.raises(DatasetError, match="now not a regular file"):
        recorded_test_split("user-bundle", training_data, dissatisfied_rating=2)


@pytest.mark.parametrize(("field", "value", "named"), [
    ("split_seed", None, "training_data.split_seed None"),
    ("split_seed", "abc", "training_data.split_seed 'abc'"),
    ("messages", [5], "training_data.inputs.messages 5"),
    ("messages", "m.jsonl", "training_data.inputs.messages 'm.jsonl'"),
    ("test_ids_sha256", None, "training_data.inputs.test_ids_sha256 None"),
])
def test_edited_manifest_names_the_field(tmp_path: Path, field: str, value: object,
                                         named: str) -> None:
    training_data = _recorded_training_data(tmp_path / "m.jsonl")
    if field == "split_seed":
        training_data["split_seed"] = value
    else:
        training_data["inputs"][field] = value

    with pytest.raises(DatasetError, match=f"invalid {re.escape(named)}"):
        recorded_test_split("user-bundle", training_data, dissatisfied_rating=2)


def test_manifest_without_training_data_asks_for_data() -> None:
    with pytest.raises(DatasetError, match="records no training data"):
        recorded_test_split("edited", {}, dissatisfied_rating=2)


def test_bundled_corpora_bundle_has_no_recorded_split() -> None:
    assert recorded_test_split("escalation", {"files": {"uss.json": "0" * 64}, "counts": {}},
                               dissatisfied_rating=2) is None


def test_other_split_name_is_rejected() -> None:
    with pytest.raises(DatasetError, match="trained with the split file.*'uss.json'.*not "
                                           "other.json"):
        check_bundled_split("escalation", {"files": {"uss.json": "0" * 64}}, "other")

    assert not split_file_path("other").exists()


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


def _write(path: Path, rows: list[Conversation]) -> Path:
    write_conversations(rows, path)
    return path


def test_missing_frustration_label_is_named(word_id_files: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    messages, conversations = word_id_files
    rows = read_conversations(messages)
    turn = rows[5].turns[0]
    labels = turn.labels.model_copy(update={"frustration": None})  # type: ignore[union-attr]
    rows[5] = rows[5].model_copy(update={"turns": [turn.model_copy(update={"labels": labels})]})
    path = _write(tmp_path / "m.jsonl", rows)

    with pytest.raises(DatasetError, match="1 customer turns .* no labels.frustration"):
        load_training_files([path], [conversations], seed=13, dissatisfied_rating=2)


def test_conversations_need_a_resolved_case(word_id_files: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    messages, conversations = word_id_files
    rows = [row.model_copy(update={"labels": None}) for row in read_conversations(conversations)]
    path = _write(tmp_path / "c.jsonl", rows)

    with pytest.raises(DatasetError, match="no resolved case: labels.overall_satisfaction 3"):
        load_training_files([messages], [path], seed=13, dissatisfied_rating=2)


def test_empty_file_is_named(word_id_files: tuple[Path, Path], tmp_path: Path) -> None:
    _, conversations = word_id_files
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")

    with pytest.raises(DatasetError, match="--messages files .*empty.jsonl.* contain no"):
        load_training_files([empty], [conversations], seed=13, dissatisfied_rating=2)


def test_same_file_name_keeps_both_hashes(word_id_files: tuple[Path, Path],
                                          tmp_path: Path) -> None:
    messages, conversations = word_id_files
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = tmp_path / "a" / "data.jsonl"
    second = tmp_path / "b" / "data.jsonl"
    first.write_bytes(messages.read_bytes())
    second.write_bytes(conversations.read_bytes())

    data = load_training_files([first], [second], seed=13, dissatisfied_rating=2)

    assert set(data.fingerprint["files"]) == {str(first), str(second)}


def test_repeated_file_names_its_option(word_id_files: tuple[Path, Path]) -> None:
    messages, conversations = word_id_files

    with pytest.raises(SchemaError, match="--messages .* is given twice"):
        load_training_files([messages, messages], [conversations], seed=13,
                            dissatisfied_rating=2)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x/../../victim"])
def test_bundle_name_must_be_one_folder(name: str, tmp_path: Path) -> None:
    empty = TrainingData(messages={}, conversations={}, fingerprint={})

    with pytest.raises(ValueError, match="bundle name .* is invalid"):
        train(load_train_config(), empty, models_dir=tmp_path / "models",
              work_dir=tmp_path / "work", bundle_name=name)

    assert not (tmp_path / "models").exists()
