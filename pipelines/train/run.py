"""The training job: data to a verified, evaluated and registered model bundle."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.datasets.paths import PROJECT_ROOT
from pipelines.evaluate.evaluation import evaluate_escalation, evaluate_messages
from pipelines.evaluate.metrics import choose_threshold_f1
from pipelines.evaluate.plots import plot_binary_head
from pipelines.evaluate.vader import VaderBaseline
from pipelines.export.heads import export_head
from pipelines.registry import log_bundle, log_metrics, log_params, start_run
from pipelines.train.config import TrainConfig
from pipelines.train.heads import fit_escalation, fit_frustration, fit_sentiment
from pipelines.train.similar import build_similar_case_index
from pipelines.train.tables import EscalationTable, escalation_table, message_table
from pipelines.train.text_encoder import prepare_text_encoder
from serving.bundle import (
    EncoderSpec,
    HeadSpec,
    Manifest,
    MlflowRef,
    SimilarCasesSpec,
    Thresholds,
    hash_bundle_files,
    write_manifest,
)
from serving.features import FEATURE_NAMES
from serving.heads import Head
from serving.rules import Policy, load_policy
from serving.schema import SENTIMENT_CLASSES, Conversation
from serving.scorer import Scorer

logger = logging.getLogger(__name__)

MODELS_DIR = PROJECT_ROOT / "models"
WORK_DIR = PROJECT_ROOT / "var"

Progress = Callable[[str, int, int], None]
# A bundle name is one folder name: no separators, no "..", nothing hidden like the staging
# folders.
BUNDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class TrainingData:
    """The corpora of one training run, already split."""

    messages: dict[str, list[Conversation]]
    conversations: dict[str, list[Conversation]]
    fingerprint: dict[str, Any]


@dataclass(frozen=True)
class TrainResult:
    """Location and evaluation results of a trained bundle."""

    bundle_dir: Path
    manifest: Manifest
    metrics: dict[str, Any]
    run_id: str
    model_version: str


def train(
    config: TrainConfig,
    data: TrainingData,
    *,
    models_dir: Path = MODELS_DIR,
    work_dir: Path = WORK_DIR,
    policy: Policy | None = None,
    bundle_name: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train the three heads, export them, evaluate the bundle and register it in MLflow."""
    policy = policy if policy is not None else load_policy()
    name = bundle_name if bundle_name is not None else \
        "escalation-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    if not BUNDLE_NAME.fullmatch(name):
        raise ValueError(f"bundle name {name!r} is invalid; use letters, digits, '.', '_' and "
                         "'-' only, starting with a letter or digit, so the bundle stays a "
                         "folder directly under models/")
    staging = models_dir / f".staging-{name}"
    final = models_dir / name
    if final.exists():
        raise FileExistsError(f"bundle folder {final} already exists; pass another bundle name "
                              "or remove the old folder")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        return _train_into(config, data, staging, final, work_dir, policy, name, progress)
    finally:
        # A failed run leaves nothing half-written behind; a finished one renamed the folder.
        shutil.rmtree(staging, ignore_errors=True)


def _train_into(config: TrainConfig, data: TrainingData, staging: Path, final: Path,
                work_dir: Path, policy: Policy, name: str,
                progress: Progress | None) -> TrainResult:
    with start_run(config.mlflow.experiment, name) as run:
        log_params({"config": config.model_dump(), "bundle": name})
        log_params({"data": data.fingerprint})

        prepared = prepare_text_encoder(
            config, data.messages["train"] + data.conversations["train"], work_dir, staging,
            progress,
        )
        embed = prepared.embed

        head_specs, frustration_threshold = _train_message_heads(config, data, embed, staging)
        escalation_spec, thresholds_found, validation = _train_escalation_head(
            config, data, embed, staging, policy, frustration_threshold
        )
        head_specs["escalation"] = escalation_spec
        similar = _build_similar_cases(data, embed, staging)

        manifest = Manifest(
            name=name,
            created_at=datetime.now(UTC),
            feature_names=list(FEATURE_NAMES),
            encoder=prepared.spec,
            heads=head_specs,
            thresholds=thresholds_found,
            training_data=data.fingerprint,
            parameters=config.model_dump(),
            files=hash_bundle_files(staging, _bundle_files(prepared.spec, head_specs)
                                    + [similar.vectors, similar.cases]),
            similar_cases=similar,
            mlflow=MlflowRef(run_id=run.info.run_id, experiment=config.mlflow.experiment,
                             registered_model=config.mlflow.registered_model),
        )
        write_manifest(manifest, staging)

        metrics = evaluate_bundle_on_splits(staging, data, config, policy, progress)
        metrics["validation"] = validation
        manifest = manifest.model_copy(update={"metrics": metrics})
        write_manifest(manifest, staging)
        log_metrics(metrics)
        _log_metrics_file(metrics, staging.parent / f".metrics-{name}.json")

        staging.rename(final)
        _log_report(final, work_dir, data, policy, progress)
        version = log_bundle(final, config.mlflow.registered_model, run.info.run_id)
        logger.info("bundle %s written to %s", name, final)
        return TrainResult(final, manifest, metrics, run.info.run_id, version)


def _train_message_heads(
    config: TrainConfig,
    data: TrainingData,
    embed: Callable[[list[str]], np.ndarray],
    staging: Path,
) -> tuple[dict[str, HeadSpec], float]:
    train_rows = _cap(data.messages["train"], config.sentiment.max_train_examples, config.seed)
    train_table = message_table(train_rows, embed)
    valid_table = message_table(data.messages["validation"], embed)

    sentiment = fit_sentiment(
        train_table.embeddings, train_table.sentiment,
        valid_table.embeddings, valid_table.sentiment,
        c_grid=config.sentiment.c_grid, seed=config.seed,
    )
    frustration_rows = _cap(data.messages["train"], config.frustration.max_train_examples,
                            config.seed)
    frustration_table = train_table if frustration_rows is train_rows else \
        message_table(frustration_rows, embed)
    frustration = fit_frustration(
        frustration_table.embeddings, frustration_table.frustration,
        valid_table.embeddings, valid_table.frustration,
        c_grid=config.frustration.c_grid, folds=config.frustration.calibration_folds,
        seed=config.seed,
    )

    dimension = train_table.embeddings.shape[1]
    specs = {
        "sentiment": _export(sentiment.estimator, dimension, staging, "sentiment",
                             valid_table.embeddings, [label.value for label in SENTIMENT_CLASSES]),
        "frustration": _export(frustration.estimator, dimension, staging, "frustration",
                               valid_table.embeddings, ["not_frustrated", "frustrated"]),
    }
    # The frustration threshold is chosen on the ONNX head's validation probabilities.
    onnx_frustration = Head(staging / specs["frustration"].file).predict_proba(
        valid_table.embeddings)[:, 1]
    threshold = choose_threshold_f1(valid_table.frustration, onnx_frustration)
    _log_plot(valid_table.frustration, onnx_frustration, "frustration", float(threshold))
    return specs, float(threshold)


def _train_escalation_head(
    config: TrainConfig,
    data: TrainingData,
    embed: Callable[[list[str]], np.ndarray],
    staging: Path,
    policy: Policy,
    frustration_threshold: float,
) -> tuple[HeadSpec, Thresholds, dict[str, Any]]:
    settings = config.escalation
    sentiment_head = Head(staging / "sentiment.onnx")
    frustration_head = Head(staging / "frustration.onnx")

    def table(conversations: Sequence[Conversation]) -> EscalationTable:
        return escalation_table(
            conversations, embed, sentiment_head, frustration_head, policy,
            horizon=settings.horizon, dissatisfied_rating=settings.dissatisfied_rating,
        )

    train_rows = _cap(data.conversations["train"], settings.max_train_conversations,
                      config.seed)
    train_table = table(train_rows)
    valid_table = table(data.conversations["validation"])
    fitted = fit_escalation(
        train_table.features, train_table.labels, valid_table.features, valid_table.labels,
        c_grid=settings.c_grid, folds=settings.calibration_folds, seed=config.seed,
    )
    spec = _export(fitted.estimator, len(FEATURE_NAMES), staging, "escalation",
                   valid_table.features, ["no_escalation", "escalation"])

    # Thresholds come from the exported head on validation rows, never from the test split.
    probability = Head(staging / spec.file).predict_proba(valid_table.features)[:, 1]
    best_f1 = float(choose_threshold_f1(valid_table.labels, probability))
    budget = budget_threshold(probability, valid_table.conversation_ids,
                              settings.max_conversation_alert_rate)
    escalation = max(best_f1, budget)
    prepare = min(escalation, recall_threshold(probability, valid_table.labels,
                                               valid_table.conversation_ids,
                                               settings.prepare_recall))
    thresholds = Thresholds(escalation=escalation, prepare=prepare,
                            frustration=frustration_threshold)
    _log_plot(valid_table.labels, probability, "escalation", escalation)
    validation = {
        "escalation_pr_auc": fitted.validation_score,
        "threshold_best_f1": best_f1,
        "threshold_alert_budget": budget,
        "escalation_c": fitted.c,
        "rows_train": int(len(train_table.labels)),
        "rows_validation": int(len(valid_table.labels)),
        "positive_rate_train": float(train_table.labels.mean()),
    }
    return spec, thresholds, validation


def _build_similar_cases(
    data: TrainingData, embed: Callable[[list[str]], np.ndarray], staging: Path
) -> SimilarCasesSpec:
    # Only training conversations go in: a test conversation must not find itself.
    vectors, cases = build_similar_case_index(data.conversations["train"], embed, staging)
    count = len(json.loads(cases.read_text(encoding="utf-8")))
    return SimilarCasesSpec(vectors=vectors.name, cases=cases.name, count=count)


def budget_threshold(
    probability: np.ndarray, conversation_ids: Sequence[str], max_alert_rate: float
) -> float:
    """Return the lowest threshold that alerts on at most `max_alert_rate` of conversations.

    A conversation alerts when any of its customer turns reaches the threshold, so the rate is
    taken over each conversation's highest probability.
    """
    highest: dict[str, float] = {}
    for conversation_id, value in zip(conversation_ids, probability, strict=True):
        highest[conversation_id] = max(highest.get(conversation_id, 0.0), float(value))
    peaks = np.sort(np.asarray(list(highest.values())))[::-1]
    allowed = int(np.floor(max_alert_rate * len(peaks)))
    if allowed >= len(peaks):
        return 0.0
    # Just above the peak of the first conversation that must not alert.
    return float(np.nextafter(peaks[allowed], 1.0))


def recall_threshold(
    probability: np.ndarray, labels: np.ndarray, conversation_ids: Sequence[str],
    recall: float,
) -> float:
    """Return the highest threshold reached in at least `recall` of the positive conversations.

    A positive conversation has a positive label on any customer turn; it counts as caught
    when any of its turns reaches the threshold. A per-turn recall target would have to catch
    the quiet turns around each complaint too, which pushed the threshold so low that it fired
    in every validation conversation.
    """
    positive = {conversation_id for conversation_id, label in zip(conversation_ids, labels,
                                                                   strict=True) if label}
    peaks: dict[str, float] = {}
    for conversation_id, value in zip(conversation_ids, probability, strict=True):
        if conversation_id in positive:
            peaks[conversation_id] = max(peaks.get(conversation_id, 0.0), float(value))
    if not peaks:
        raise ValueError("no positive conversation in the validation rows, so no threshold "
                         "can reach a recall target; check the escalation labels")

    ordered = np.sort(np.asarray(list(peaks.values())))[::-1]
    needed = int(np.ceil(recall * len(ordered)))
    return float(ordered[max(needed, 1) - 1])


def _export(
    estimator: Any, n_features: int, staging: Path, name: str, check_rows: np.ndarray,
    classes: list[str],
) -> HeadSpec:
    file = f"{name}.onnx"
    difference = export_head(estimator, n_features, staging / file, check_rows, name=name)
    return HeadSpec(file=file, input_name="features", n_features=n_features, classes=classes,
                    parity_max_abs_diff=difference)


def evaluate_bundle_on_splits(
    bundle_dir: Path,
    data: TrainingData,
    config: TrainConfig,
    policy: Policy,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate a bundle on the test splits of the training data, through the Scorer."""
    scorer = Scorer(bundle_dir, policy=policy)
    test_conversations = data.conversations["test"]
    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        if progress is not None:
            progress("evaluate", done[0], len(test_conversations))

    metrics = evaluate_messages(data.messages["test"], scorer, VaderBaseline())
    metrics["escalation"] = evaluate_escalation(
        test_conversations, scorer, horizon=config.escalation.horizon,
        dissatisfied_rating=config.escalation.dissatisfied_rating, progress=advance,
    )
    return metrics


def _bundle_files(encoder: EncoderSpec, heads: dict[str, HeadSpec]) -> list[str]:
    return [*encoder.file_names(), *(head.file for head in heads.values())]


def _cap(conversations: list[Conversation], limit: int, seed: int) -> list[Conversation]:
    if limit <= 0 or limit >= len(conversations):
        return conversations
    generator = np.random.default_rng(seed)
    chosen = sorted(generator.choice(len(conversations), size=limit, replace=False))
    return [conversations[index] for index in chosen]


def _log_plot(y_true: np.ndarray, probability: np.ndarray, name: str, threshold: float) -> None:
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = plot_binary_head(np.asarray(y_true), np.asarray(probability),
                                title=f"{name} (validation)", threshold=threshold,
                                path=Path(folder) / f"{name}_validation.png")
        mlflow.log_artifact(str(path), artifact_path="plots")


def _log_report(bundle_dir: Path, work_dir: Path, data: TrainingData, policy: Policy,
                progress: Progress | None) -> None:
    # The HTML report is logged with the run so a reviewer can read curves and lead times beside
    # the metrics. Writing it scores the test splits once more.
    import mlflow

    from pipelines.report.writer import write_report

    report = write_report(bundle_dir, work_dir / "reports" / f"{bundle_dir.name}.html",
                          data.messages["test"] + data.conversations["test"], policy=policy,
                          data_description="the test splits of the training data",
                          progress=progress)
    mlflow.log_artifact(str(report), artifact_path="report")
    logger.info("report of %s written to %s", bundle_dir.name, report)


def _log_metrics_file(metrics: dict[str, Any], path: Path) -> None:
    import mlflow

    path.write_text(json.dumps(metrics, indent=2, default=float), encoding="utf-8")
    mlflow.log_artifact(str(path), artifact_path="evaluation")
    path.unlink()


def fingerprint_files(paths: Sequence[Path]) -> dict[str, str]:
    """Return {file name: sha256} of raw data files, the data part of a run's fingerprint."""
    result = {}
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        result[path.name] = digest
    return result
