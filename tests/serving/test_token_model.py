"""Tests of the token model folder: training writes it, serving loads, checks and scores it."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.datasets.mhch import read_mhch
from pipelines.train.tokens import TokenEncoderSettings
from pipelines.train.tokens_bundle import (
    FittedTokenModel,
    TokenModelSettings,
    fit_token_model,
    save_token_model,
)
from pipelines.train.tokens_head import predict_probability
from pipelines.train.tokens_table import turn_table
from serving.errors import BundleIntegrityError, FeatureSchemaError, TokenModelError
from serving.schema import Conversation
from serving.token_encoder import IDF_FILE
from serving.token_model import HEAD_FILE, MANIFEST_FILE, TokenModel

SETTINGS = TokenModelSettings(encoder=TokenEncoderSettings(ngram_range=(1, 2), min_df=1), c=1.0)
PARITY_TOLERANCE = 1e-5


def _dialogue(index: int, generator: random.Random) -> dict[str, object]:
    # Handoff turns are a repeated canned bot response (ids 50-53) or a customer complaint (99).
    utterances = []
    canned_sent = False
    for turn in range(generator.randint(4, 9)):
        customer = turn % 2 == 0
        label = 0
        if customer:
            tokens = [generator.randint(2, 30) for _ in range(generator.randint(1, 5))]
            if generator.random() < 0.15:
                tokens.append(99)
                label = 1
        elif generator.random() < 0.5:
            tokens = [50, 51, 52, 53]
            label = 1 if canned_sent else 0
            canned_sent = True
        else:
            tokens = [generator.randint(31, 49) for _ in range(generator.randint(3, 8))]
        utterances.append({"turn": turn + 1, "role": "customer" if customer else "agent_or_bot",
                           "token_ids": tokens, "handoff_label": label})
    return {"dialogue_index": index, "domain": "synthetic", "split": "eval",
            "n_utterances": len(utterances), "utterances": utterances}


@pytest.fixture(scope="module")
def conversations(tmp_path_factory: pytest.TempPathFactory) -> list[Conversation]:
    generator = random.Random(11)
    path = tmp_path_factory.mktemp("token_model") / "synthetic.jsonl"
    path.write_text("".join(json.dumps(_dialogue(index, generator)) + "\n"
                            for index in range(70)), encoding="utf-8")
    return read_mhch(path)


@pytest.fixture(scope="module")
def fitted(conversations: list[Conversation]) -> FittedTokenModel:
    return fit_token_model(conversations[:50], SETTINGS)


@pytest.fixture(scope="module")
def model_dir(fitted: FittedTokenModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_token_model(fitted, tmp_path_factory.mktemp("saved") / "model")


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    return copy


def _edit_manifest(folder: Path, key: str, value: object) -> None:
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest[key] = value
    path.write_text(json.dumps(manifest), encoding="utf-8")


def test_probabilities_match_sklearn_head(fitted: FittedTokenModel, model_dir: Path,
                                          conversations: list[Conversation]) -> None:
    model = TokenModel.load(model_dir)
    held_out = conversations[50:]
    expected = predict_probability(fitted.head.estimator,
                                   turn_table(held_out, fitted.encoder).features)

    actual = np.concatenate([model.score_turns(conversation) for conversation in held_out])

    assert actual.shape == expected.shape
    assert float(np.max(np.abs(actual - expected))) <= PARITY_TOLERANCE


def test_features_equal_training_rows(fitted: FittedTokenModel, model_dir: Path,
                                      conversations: list[Conversation]) -> None:
    model = TokenModel.load(model_dir)
    training = fitted.table.features.toarray()

    served = np.concatenate([model.feature_matrix(conversation)
                             for conversation in conversations[:50]])

    assert served.dtype == training.dtype
    assert np.array_equal(served, training)


def test_decide_uses_manifest_threshold(fitted: FittedTokenModel, model_dir: Path) -> None:
    model = TokenModel.load(model_dir)
    threshold = fitted.head.threshold

    decisions = model.decide(np.asarray([threshold - 1e-6, threshold, threshold + 1e-6]))

    assert model.threshold == threshold
    assert decisions.tolist() == [False, True, True]


def test_saved_threshold_overrides_fitted(fitted: FittedTokenModel, tmp_path: Path) -> None:
    folder = save_token_model(fitted, tmp_path / "model", threshold=0.25,
                              threshold_rule="fixed for a test")

    model = TokenModel.load(folder)

    assert model.threshold == 0.25
    assert model.manifest.training["threshold_rule"] == "fixed for a test"


def test_save_rejects_existing_model(fitted: FittedTokenModel, model_dir: Path) -> None:
    with pytest.raises(FileExistsError, match="already contains a token model"):
        save_token_model(fitted, model_dir)


def test_load_rejects_changed_file(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(model_dir, tmp_path)
    with (folder / IDF_FILE).open("ab") as handle:
        handle.write(b"\0")

    with pytest.raises(BundleIntegrityError, match=f"{IDF_FILE} has sha256"):
        TokenModel.load(folder)


def test_load_rejects_missing_head(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(model_dir, tmp_path)
    (folder / HEAD_FILE).unlink()

    with pytest.raises(BundleIntegrityError, match=f"{HEAD_FILE} not found"):
        TokenModel.load(folder)


def test_load_rejects_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(TokenModelError, match="manifest .* not found"):
        TokenModel.load(tmp_path)


def test_load_rejects_reordered_features(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(model_dir, tmp_path)
    names = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["feature_names"]
    names[0], names[1] = names[1], names[0]
    _edit_manifest(folder, "feature_names", names)

    with pytest.raises(FeatureSchemaError, match="feature 0 is"):
        TokenModel.load(folder)


def test_load_rejects_fewer_features(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(model_dir, tmp_path)
    names = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["feature_names"]
    _edit_manifest(folder, "feature_names", names[:-1])

    with pytest.raises(FeatureSchemaError, match=f"lists {len(names) - 1} features"):
        TokenModel.load(folder)


@pytest.mark.parametrize(("key", "value", "message"), [
    pytest.param("kind", "minilm", "kind 'minilm'", id="kind"),
    pytest.param("format", "2", "format '2'", id="format"),
    pytest.param("threshold", 1.5, "threshold 1.5", id="threshold-range"),
    pytest.param("threshold", True, "threshold True", id="threshold-bool"),
    pytest.param("files", ["head.onnx"], "files that are not", id="files"),
])
def test_load_rejects_bad_manifest_value(model_dir: Path, tmp_path: Path, key: str,
                                         value: object, message: str) -> None:
    folder = _copy(model_dir, tmp_path)
    _edit_manifest(folder, key, value)

    with pytest.raises(TokenModelError, match=message):
        TokenModel.load(folder)


def test_load_rejects_other_encoder_settings(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(model_dir, tmp_path)
    encoder = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["encoder"]
    encoder["sublinear_tf"] = not encoder["sublinear_tf"]
    _edit_manifest(folder, "encoder", encoder)

    with pytest.raises(TokenModelError, match="encoder settings sublinear_tf"):
        TokenModel.load(folder)


def test_serving_loads_without_sklearn(model_dir: Path) -> None:
    script = (
        "import sys\n"
        "from serving.token_model import TokenModel\n"
        f"TokenModel.load({str(model_dir)!r})\n"
        "heavy = sorted(name for name in ('sklearn', 'torch', 'pandas', 'mlflow') "
        "if name in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               check=False, cwd=Path(__file__).resolve().parents[2])

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == ""
