"""End-to-end training on a small real subset: bundle, parity, evaluation and MLflow."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipelines.export.encoder_cache import prepare_encoder
from pipelines.export.heads import PARITY_TOLERANCE
from pipelines.train.config import load_train_config
from pipelines.train.data import load_training_data
from pipelines.train.embeddings import EmbeddingCache
from serving.bundle import MANIFEST_FILE, load_manifest
from serving.features import FEATURE_NAMES
from serving.scorer import Scorer
from tests.conftest import SMALL_CAPS, TrainedBundle
from tests.pipelines.feature_parity import training_and_served_features


def test_bundle_contains_manifest_files(trained_bundle: TrainedBundle) -> None:
    manifest = load_manifest(trained_bundle.path)

    assert sorted(manifest.files) == sorted(
        ["encoder.int8.onnx", "tokenizer.json", "sentiment.onnx", "frustration.onnx",
         "escalation.onnx", "similar_cases.npy", "similar_cases.json"]
    )
    assert manifest.similar_cases is not None
    assert manifest.similar_cases.count > 0
    assert manifest.feature_names == list(FEATURE_NAMES)
    assert manifest.encoder.variant == "int8"
    assert manifest.encoder.parity["int8_min_cosine"] >= 0.93
    assert manifest.encoder.parity["fp32_min_cosine"] >= 0.999


def test_heads_match_sklearn_within_tolerance(trained_bundle: TrainedBundle) -> None:
    manifest = load_manifest(trained_bundle.path)

    for name, head in manifest.heads.items():
        assert head.parity_max_abs_diff <= PARITY_TOLERANCE, name


def test_thresholds_are_ordered(trained_bundle: TrainedBundle) -> None:
    thresholds = load_manifest(trained_bundle.path).thresholds

    assert 0.0 < thresholds.prepare <= thresholds.escalation < 1.0
    assert 0.0 < thresholds.frustration < 1.0


def test_evaluation_reports_models_beside_baselines(trained_bundle: TrainedBundle) -> None:
    metrics = trained_bundle.metrics

    assert set(metrics["sentiment"]) == {"model", "vader"}
    assert set(metrics["frustration"]) == {"model", "vader"}
    assert {"model", "rules"} <= set(metrics["escalation"])
    for key in ("roc_auc", "pr_auc", "f1", "brier", "ece"):
        assert math.isfinite(metrics["escalation"]["model"][key]), key
    assert "catch_rate" in metrics["escalation"]["model"]["lead_time"]
    assert metrics["escalation"]["n_conversations"] == SMALL_CAPS["conversations"]["test"]


def test_models_beat_chance(trained_bundle: TrainedBundle) -> None:
    metrics = trained_bundle.metrics

    assert metrics["sentiment"]["model"]["macro_f1"] > 0.45
    assert metrics["frustration"]["model"]["roc_auc"] > 0.7
    assert metrics["escalation"]["model"]["roc_auc"] > 0.55


def test_mlflow_run_and_registered_version(trained_bundle: TrainedBundle) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(trained_bundle.tracking_uri)
    client = MlflowClient()
    run = client.get_run(trained_bundle.run_id)
    version = client.get_model_version("escalation-tests", trained_bundle.model_version)
    artifacts = [item.path for item in client.list_artifacts(trained_bundle.run_id, "bundle")]

    assert "sentiment.model.macro_f1" in run.data.metrics
    assert "escalation.model.roc_auc" in run.data.metrics
    assert "data.files.MWOZ.txt.gz" in run.data.params
    assert version.run_id == trained_bundle.run_id
    assert f"bundle/{MANIFEST_FILE}" in artifacts
    plots = [item.path for item in client.list_artifacts(trained_bundle.run_id, "plots")]
    assert "plots/escalation_validation.png" in plots
    assert "plots/frustration_validation.png" in plots
    assert load_manifest(trained_bundle.path).mlflow.run_id == trained_bundle.run_id


def test_training_logs_the_model_report(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(trained_bundle.tracking_uri)
    client = MlflowClient()
    name = f"{trained_bundle.path.name}.html"
    artifacts = [item.path for item in client.list_artifacts(trained_bundle.run_id, "report")]
    assert artifacts == [f"report/{name}"]

    local = Path(client.download_artifacts(trained_bundle.run_id, f"report/{name}",
                                           str(tmp_path)))
    page = local.read_text(encoding="utf-8")
    assert trained_bundle.path.name in page
    assert "Lead time" in page


def test_train_and_serve_features_identical(trained_bundle: TrainedBundle) -> None:
    """The training table and the scorer compute the same vectors for the same conversation."""
    encoder = prepare_encoder(trained_bundle.work_dir / "encoder", "int8", 256)
    cache = EmbeddingCache(trained_bundle.work_dir / "embeddings", encoder.sha256,
                           encoder.batch_size, encoder.dimension)

    trained, served = training_and_served_features(
        trained_bundle.path, lambda texts: cache.embed(texts, encoder.encode))

    np.testing.assert_array_equal(trained, served)


def test_scores_are_written_as_json(trained_bundle: TrainedBundle) -> None:
    config = load_train_config()
    conversation = load_training_data(seed=config.seed).conversations["test"][0]
    result = Scorer(trained_bundle.path).score(conversation).to_dict()

    decoded = json.loads(json.dumps(result))
    assert decoded["conversation_id"] == conversation.id
    assert len(decoded["turns"]) == len(conversation.customer_turn_indices())
    for turn in decoded["turns"]:
        assert 0.0 <= turn["escalation_probability"] <= 1.0
        assert sum(turn["sentiment"].values()) == pytest.approx(1.0, abs=1e-5)
