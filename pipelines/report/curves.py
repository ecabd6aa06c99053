"""Curve and matrix data of the report: ROC, precision-recall, reliability, confusion, sweep."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from pipelines.evaluate.metrics import DEFAULT_N_BINS, binary_metrics, lead_times
from pipelines.report.data import ConversationRows
from pipelines.report.summary import conversation_alert_rate, pooled, sequences

# Thresholds of the threshold table besides the bundle's own: 0.05 to 0.95 in steps of 0.05.
SWEEP_THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 20))


@dataclass(frozen=True)
class Curve:
    """One ROC or precision-recall curve of one scorer, with the area under it."""

    name: str
    x: np.ndarray
    y: np.ndarray
    area: float


@dataclass(frozen=True)
class OperatingPoint:
    """The false-positive rate, recall and precision of a scorer at one threshold."""

    name: str
    threshold: float
    false_positive_rate: float
    recall: float
    precision: float


@dataclass(frozen=True)
class RankingCurves:
    """ROC and precision-recall curves of every scorer of one head, on the same labels."""

    roc: list[Curve]
    precision_recall: list[Curve]
    points: list[OperatingPoint] = field(default_factory=list)


@dataclass(frozen=True)
class ReliabilityCurve:
    """Mean predicted probability against the observed positive rate in each non-empty bin."""

    name: str
    mean_probability: np.ndarray
    observed_rate: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of true class (rows) against predicted class (columns) at one decision rule."""

    title: str
    classes: list[str]
    counts: np.ndarray
    rule: str


def ranking_curves(y_true: np.ndarray, scores: dict[str, np.ndarray]) -> RankingCurves:
    """Compute ROC and precision-recall curves of each named score against 0/1 labels.

    A curve needs both classes in `y_true`; with one class only, the lists are empty.
    """
    roc: list[Curve] = []
    precision_recall: list[Curve] = []
    if np.unique(y_true).size < 2:
        return RankingCurves(roc, precision_recall)

    for name, score in scores.items():
        false_positive_rate, true_positive_rate, _ = roc_curve(y_true, score)
        roc.append(Curve(name, false_positive_rate, true_positive_rate,
                         float(roc_auc_score(y_true, score))))
        precision, recall, _ = precision_recall_curve(y_true, score, drop_intermediate=True)
        precision_recall.append(Curve(name, recall, precision,
                                      float(average_precision_score(y_true, score))))
    return RankingCurves(roc, precision_recall)


def one_vs_rest_curves(
    y_index: np.ndarray, probabilities: dict[str, np.ndarray], class_names: Sequence[str]
) -> RankingCurves:
    """Compute one-vs-rest ROC and precision-recall curves per class for each named scorer."""
    roc: list[Curve] = []
    precision_recall: list[Curve] = []
    for column, class_name in enumerate(class_names):
        is_class = (y_index == column).astype(int)
        per_class = ranking_curves(is_class, {f"{name}: {class_name}": matrix[:, column]
                                              for name, matrix in probabilities.items()})
        roc.extend(per_class.roc)
        precision_recall.extend(per_class.precision_recall)
    return RankingCurves(roc, precision_recall)


def operating_point(name: str, y_true: np.ndarray, score: np.ndarray,
                    threshold: float) -> OperatingPoint:
    """Return the false-positive rate, recall and precision of `score >= threshold`."""
    predicted = score >= threshold
    positives = y_true == 1
    negatives = ~positives
    alerted = int(predicted.sum())
    return OperatingPoint(
        name=name,
        threshold=threshold,
        false_positive_rate=_share(int((predicted & negatives).sum()), int(negatives.sum())),
        recall=_share(int((predicted & positives).sum()), int(positives.sum())),
        precision=_share(int((predicted & positives).sum()), alerted),
    )


def _share(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def reliability_curve(
    name: str, outcome: np.ndarray, confidence: np.ndarray, n_bins: int = DEFAULT_N_BINS
) -> ReliabilityCurve:
    """Bin `confidence` into `n_bins` equal-width bins on [0, 1] and compare with `outcome`.

    Bin k contains k/n_bins <= p < (k+1)/n_bins and the last bin also contains p = 1, the
    binning of `expected_calibration_error`, so the diagram shows the gaps that ECE averages.
    """
    interior_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bins = np.searchsorted(interior_edges, confidence, side="right")
    counts = np.bincount(bins, minlength=n_bins)
    confidence_sums = np.bincount(bins, weights=confidence, minlength=n_bins)
    outcome_sums = np.bincount(bins, weights=outcome.astype(float), minlength=n_bins)

    filled = counts > 0
    return ReliabilityCurve(
        name=name,
        mean_probability=confidence_sums[filled] / counts[filled],
        observed_rate=outcome_sums[filled] / counts[filled],
        counts=counts[filled],
    )


def top_label_reliability(
    name: str, y_index: np.ndarray, probabilities: np.ndarray
) -> ReliabilityCurve:
    """Reliability of the top-class confidence: is the argmax right as often as it claims?"""
    correct = (probabilities.argmax(axis=1) == y_index).astype(float)
    return reliability_curve(name, correct, probabilities.max(axis=1))


def binary_confusion(
    title: str, y_true: np.ndarray, score: np.ndarray, threshold: float, classes: list[str]
) -> ConfusionMatrix:
    """Count labels against `score >= threshold`, class 0 first."""
    predicted = (score >= threshold).astype(int)
    counts = confusion_matrix(y_true, predicted, labels=[0, 1])
    return ConfusionMatrix(title, classes, counts, f"score >= {threshold:.3f}")


def argmax_confusion(
    title: str, y_index: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> ConfusionMatrix:
    """Count true classes against the argmax class."""
    counts = confusion_matrix(y_index, probabilities.argmax(axis=1),
                              labels=list(range(len(classes))))
    return ConfusionMatrix(title, classes, counts, "most probable class")


def threshold_sweep(
    conversations: Sequence[ConversationRows], marked: dict[str, float]
) -> list[dict[str, Any]]:
    """Escalation-head metrics at each threshold of SWEEP_THRESHOLDS and at the marked ones.

    `marked` maps a label (such as "escalation") to a threshold of the bundle; those rows carry
    the label in `marks`. Precision and recall are per customer turn; alert, catch and
    false-alarm rates and lead times are per conversation.
    """
    labels = pooled(conversations, lambda rows: rows.labels)
    model = pooled(conversations, lambda rows: rows.model)
    model_sequences = sequences(conversations, lambda rows: rows.model)
    candidates = sorted({*SWEEP_THRESHOLDS, *marked.values()})

    table = []
    for threshold in candidates:
        per_turn = binary_metrics(labels, model, threshold)
        lead = lead_times(model_sequences, threshold)
        table.append({
            "threshold": threshold,
            "marks": [name for name, value in marked.items() if value == threshold],
            "alert_rate_conversations": conversation_alert_rate(
                conversations, lambda rows: rows.model, threshold),
            "precision": per_turn["precision"],
            "recall": per_turn["recall"],
            "f1": per_turn["f1"],
            "catch_rate": lead.catch_rate,
            "mean_lead_turns": lead.mean_lead_turns,
            "median_lead_turns": lead.median_lead_turns,
            "false_alarm_rate": lead.false_alarm_rate,
        })
    return table
