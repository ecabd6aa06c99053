"""The two USS protocols: k-fold cross-validation on one corpus, and train on one, test on another.

Each split trains the rating head and the escalation head on its training rows only, exports
both to ONNX and scores the test rows with onnxruntime, the way the serving side runs heads.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.benchmark.cv import contiguous_folds, contiguous_subfolds
from pipelines.benchmark.uss_data import UssTable
from pipelines.benchmark.uss_model import (
    FittedRatingHead,
    RatingCandidate,
    fit_rating_head,
    level_probabilities,
)
from pipelines.evaluate.metrics import binary_metrics
from pipelines.evaluate.satisfaction_metrics import (
    DISSATISFIED_AT_OR_BELOW,
    RATINGS,
    satisfaction_metrics,
)
from pipelines.export.heads import export_head
from pipelines.train.heads import fit_escalation
from serving.heads import Head

logger = logging.getLogger(__name__)

ESCALATION_CLASS = 1


@dataclass(frozen=True)
class ProtocolSettings:
    """Grids and label settings shared by both protocols."""

    candidates: list[RatingCandidate]
    inner_folds: int
    escalation_c_grid: list[float]
    escalation_calibration_folds: int
    seed: int


@dataclass
class SplitOutcome:
    """Predictions of one train/test split, all from the exported ONNX heads.

    `heads` are the rating and escalation heads as onnxruntime sessions, kept for the speed
    measurement after their temporary files are gone.
    """

    gold: np.ndarray
    predicted: np.ndarray
    dissatisfied_probability: np.ndarray
    escalation_probability: np.ndarray
    escalation_labels: np.ndarray
    head_seconds: float
    heads: tuple[Head, Head]
    selection: dict[str, Any] = field(default_factory=dict)


def run_split(
    train: UssTable, train_rows: np.ndarray, test: UssTable, test_rows: np.ndarray,
    settings: ProtocolSettings, work_dir: Path,
) -> SplitOutcome:
    """Fit both heads on `train_rows` of `train`, export them and score `test_rows` of `test`."""
    from threadpoolctl import threadpool_limits

    # The matrices are small ([n, 415]), so BLAS threads add more synchronisation than speed.
    # On a 2-core machine shared with other jobs, a multithreaded fit took about 20 times
    # longer than a single-threaded one (OpenBLAS 0.3.31).
    with threadpool_limits(limits=1, user_api="blas"):
        rating_head = fit_rating_head(train.features[train_rows], train.ratings[train_rows],
                                      candidates=settings.candidates,
                                      inner_folds=settings.inner_folds, seed=settings.seed)
        escalation = _fit_escalation_head(train, train_rows, settings)

    x_test = test.features[test_rows]
    rating_onnx = _export(rating_head.estimator, x_test, work_dir / "rating.onnx", "rating")
    escalation_onnx = _export(escalation, x_test, work_dir / "escalation.onnx", "escalation")

    started = time.perf_counter()
    probabilities = level_probabilities(rating_head.estimator.classes_,
                                        rating_onnx.predict_proba(x_test))
    escalation_probability = escalation_onnx.predict_proba(x_test)[:, ESCALATION_CLASS]
    predicted = rating_head.rule.predict(probabilities)
    head_seconds = time.perf_counter() - started

    return SplitOutcome(
        gold=test.ratings[test_rows],
        predicted=predicted,
        dissatisfied_probability=probabilities[:, :DISSATISFIED_AT_OR_BELOW].sum(axis=1),
        escalation_probability=escalation_probability.astype(np.float64),
        escalation_labels=test.escalation_labels[test_rows],
        head_seconds=head_seconds,
        heads=(rating_onnx, escalation_onnx),
        selection=_selection_summary(rating_head),
    )


def cross_validate(table: UssTable, n_folds: int, settings: ProtocolSettings
                   ) -> list[SplitOutcome]:
    """Run k-fold cross-validation over the turns of one corpus in contiguous file-order blocks."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="uss-cv-") as folder:
        for fold in contiguous_folds(len(table.ratings), n_folds):
            started = time.perf_counter()
            outcome = run_split(table, fold.train, table, fold.test, settings, Path(folder))
            outcomes.append(outcome)
            logger.info("USS fold %d of %d: %d test turns in %.1f s", fold.number + 1, n_folds,
                        len(fold.test), time.perf_counter() - started)
    return outcomes


def cross_domain(train: UssTable, test: UssTable, settings: ProtocolSettings) -> SplitOutcome:
    """Train on every turn of one corpus and test on every turn of another."""
    with tempfile.TemporaryDirectory(prefix="uss-cross-") as folder:
        return run_split(train, np.arange(len(train.ratings)), test,
                         np.arange(len(test.ratings)), settings, Path(folder))


def split_metrics(outcome: SplitOutcome) -> dict[str, float]:
    """Return Sun et al.'s four metrics and the ranking quality of both dissatisfied scores."""
    metrics = satisfaction_metrics(outcome.gold.tolist(), outcome.predicted.tolist())
    metrics["uar_all_levels"] = uar_all_levels(outcome.gold, outcome.predicted)

    dissatisfied = (outcome.gold <= DISSATISFIED_AT_OR_BELOW).astype(int)
    rating = binary_metrics(dissatisfied, np.clip(outcome.dissatisfied_probability, 0, 1), 0.5)
    escalation = binary_metrics(dissatisfied, outcome.escalation_probability, 0.5)
    horizon = binary_metrics(outcome.escalation_labels, outcome.escalation_probability, 0.5)
    horizon_rating = binary_metrics(outcome.escalation_labels,
                                    np.clip(outcome.dissatisfied_probability, 0, 1), 0.5)
    metrics.update(
        rating_dissatisfied_roc_auc=rating["roc_auc"],
        rating_dissatisfied_pr_auc=rating["pr_auc"],
        escalation_dissatisfied_roc_auc=escalation["roc_auc"],
        escalation_dissatisfied_pr_auc=escalation["pr_auc"],
        escalation_label_roc_auc=horizon["roc_auc"],
        escalation_label_pr_auc=horizon["pr_auc"],
        rating_escalation_label_roc_auc=horizon_rating["roc_auc"],
        rating_escalation_label_pr_auc=horizon_rating["pr_auc"],
    )
    return metrics


def uar_all_levels(gold: np.ndarray, predicted: np.ndarray) -> float:
    """Return the mean recall over all five levels, counting an absent level's recall as 0.

    It is the stricter reading of UAR: a test block without a rating-1 or rating-5 turn caps it
    at 0.8.
    """
    recalls = [
        float((predicted[gold == level] == level).mean()) if (gold == level).any() else 0.0
        for level in RATINGS
    ]
    return float(np.mean(recalls))


def _fit_escalation_head(train: UssTable, rows: np.ndarray, settings: ProtocolSettings) -> Any:
    # The escalation head picks C on a validation block. The last inner fold of the training
    # rows is that block, so the test rows play no part in the choice.
    validation = contiguous_subfolds(rows, settings.inner_folds)[-1]
    fitted = fit_escalation(
        train.features[validation.train], train.escalation_labels[validation.train],
        train.features[validation.test], train.escalation_labels[validation.test],
        c_grid=settings.escalation_c_grid, folds=settings.escalation_calibration_folds,
        seed=settings.seed,
    )
    return fitted.estimator


def _export(estimator: Any, check_rows: np.ndarray, path: Path, name: str) -> Head:
    export_head(estimator, check_rows.shape[1], path, check_rows[:256], name=name)
    return Head(path)


def _selection_summary(head: FittedRatingHead) -> dict[str, Any]:
    return {
        "rating_head": head.candidate.label(),
        "prior_power": head.rule.prior_power,
        "dissatisfied_threshold": head.rule.dissatisfied_threshold,
        "out_of_fold_uar": head.selection["out_of_fold"]["uar"],
        "out_of_fold_f1_dissatisfied": head.selection["out_of_fold"]["f1_dissatisfied"],
    }
