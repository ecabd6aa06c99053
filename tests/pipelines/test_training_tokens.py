"""Bundles with the language-agnostic token encoder: trained, verified, scored and served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipelines.train.config import TrainConfig, load_train_config
from pipelines.train.data import load_training_data
from pipelines.train.run import TrainingData, train
from serving.api import create_app
from serving.auth import generate_api_key
from serving.bundle import EncoderSpec, load_manifest
from serving.errors import BundleIntegrityError, FeatureSchemaError
from serving.scorer import Scorer
from serving.service import EscalationService
from serving.settings import load_settings
from serving.token_encoder import TokenEncoder, load_token_encoder
from tests.conftest import TrainedBundle
from tests.pipelines.feature_parity import training_and_served_features


def test_manifest_describes_the_token_encoder(trained_tokens_bundle: TrainedBundle) -> None:
    manifest = load_manifest(trained_tokens_bundle.path)
    spec = manifest.encoder

    assert spec.kind == "tokens"
    assert spec.variant == "tfidf"
    assert spec.tokenizer is None
    assert spec.dimension == 384
    assert spec.parity["tfidf_max_abs_diff"] < 1e-6
    assert set(spec.file_names()) <= set(manifest.files)
    assert not list(trained_tokens_bundle.path.glob("encoder*.onnx"))


def test_token_bundle_models_beat_chance(trained_tokens_bundle: TrainedBundle) -> None:
    metrics = trained_tokens_bundle.metrics

    assert metrics["frustration"]["model"]["roc_auc"] > 0.6
    assert metrics["escalation"]["model"]["roc_auc"] > 0.55


def test_scorer_embeds_with_the_saved_token_encoder(trained_tokens_bundle: TrainedBundle) -> None:
    scorer = Scorer(trained_tokens_bundle.path)
    texts = ["my order never arrived", "thanks, that solved it"]

    assert isinstance(scorer.encoder, TokenEncoder)
    rows = scorer.encoder.encode(texts)
    saved = load_token_encoder(trained_tokens_bundle.path).transform(texts)
    np.testing.assert_array_equal(rows, saved)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)


def test_train_and_serve_features_identical(trained_tokens_bundle: TrainedBundle) -> None:
    encoder = load_token_encoder(trained_tokens_bundle.path)

    trained, served = training_and_served_features(trained_tokens_bundle.path, encoder.encode)

    np.testing.assert_array_equal(trained, served)


def test_service_scores_turns_with_a_token_bundle(trained_tokens_bundle: TrainedBundle,
                                                  tmp_path: Path) -> None:
    key, key_hash = generate_api_key()
    settings = load_settings({}, bundle=trained_tokens_bundle.path, api_key_hashes=(key_hash,),
                             database_url=f"sqlite:///{tmp_path / 'log.db'}")
    service = EscalationService(settings, scorer=Scorer(trained_tokens_bundle.path))
    url = "/v1/conversations/tokens-1/turns"

    with TestClient(create_app(service)) as client:
        first = client.post(url, json={"role": "customer", "text": "Where is my refund?"},
                            headers={"X-API-Key": key})
        second = client.post(url, json={"role": "customer",
                                        "text": "I want to talk to a real person now"},
                             headers={"X-API-Key": key})

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["turn_index"] == 1
    assert 0.0 <= body["escalation_probability"] <= 1.0
    assert body["decision"]["tier"] != "none"


def test_changed_projection_is_refused(trained_tokens_bundle: TrainedBundle,
                                       tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(trained_tokens_bundle.path, copy)
    projection = copy / "token_encoder_projection.npy"
    weights = np.load(projection, allow_pickle=False)
    weights[0, 0] += 0.5
    np.save(projection, weights, allow_pickle=False)

    with pytest.raises(BundleIntegrityError, match="token_encoder_projection.npy"):
        Scorer(copy)


def test_encoder_width_must_match_the_features(trained_tokens_bundle: TrainedBundle,
                                               tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(trained_tokens_bundle.path, copy)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["encoder"]["dimension"] = 128
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(FeatureSchemaError, match="128-column encoder"):
        load_manifest(copy)


def test_tokens_config_needs_the_feature_width() -> None:
    config = load_train_config().model_dump()
    config["encoder"]["kind"] = "tokens"
    config["encoder"]["tokens"]["projection_dimension"] = 0

    with pytest.raises(ValueError, match="projection_dimension is 0.*must be 384"):
        type(load_train_config()).model_validate(config)


@pytest.mark.parametrize("fields", [
    {"kind": "minilm", "file": "encoder.onnx", "variant": "int8", "max_length": 256},
    {"kind": "tokens", "file": "token_encoder.json", "variant": "tfidf"},
    {"kind": "tokens", "file": "token_encoder.json", "variant": "int8",
     "arrays": ["token_encoder_idf.npy"]},
])
def test_encoder_spec_rejects_mixed_kinds(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="encoder"):
        EncoderSpec.model_validate({**fields, "dimension": 384, "source_model": "x"})


def test_failed_run_leaves_no_staging_folder(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = load_train_config().model_dump()
    config["encoder"]["kind"] = "tokens"
    config["encoder"]["tokens"]["token_pattern"] = "qqqzzz"
    full = load_training_data(seed=13)
    data = TrainingData(messages={role: rows[:50] for role, rows in full.messages.items()},
                        conversations={role: rows[:10]
                                       for role, rows in full.conversations.items()},
                        fingerprint=full.fingerprint)

    with pytest.raises(ValueError, match="empty vocabulary"):
        train(TrainConfig.model_validate(config), data, models_dir=tmp_path / "models",
              work_dir=tmp_path / "work", bundle_name="broken")

    assert list((tmp_path / "models").iterdir()) == []
