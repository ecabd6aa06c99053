"""Evaluation metrics for the escalation models: ranking, calibration, thresholds, lead time.

Every public function takes arrays or sequences, validates them and raises ValueError naming the
argument, the offending value and what is expected. Probabilities must lie in [0, 1], and an
alert fires when a probability is >= its threshold, the same rule the serving side applies.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

logger = logging.getLogger(__name__)

DEFAULT_N_BINS = 15

# Threshold returned by choose_threshold_f1 when the data has no positive sample, so F1 is 0
# everywhere and gives no preference.
FALLBACK_THRESHOLD = 0.5

# F1 values that are equal in exact arithmetic can differ in the last bits after division, so
# anything this close to the maximum counts as a tie.
F1_TIE_TOLERANCE = 1e-12

# Rows of a probability matrix must sum to 1 within this, which admits float32 softmax output.
ROW_SUM_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------
# Binary classification


def binary_metrics(y_true: ArrayLike, probability: ArrayLike, threshold: float) -> dict[str, float]:
    """Compute ranking, threshold and calibration metrics of a binary classifier.

    `y_true` has shape [n] with values 0/1 (or False/True), `probability` has shape [n] with the
    predicted probability of class 1. A sample is predicted positive when
    probability >= threshold.

    Keys: `roc_auc`, `pr_auc` (average precision), `f1`, `precision` and `recall` at the
    threshold, `brier` (mean squared error of the probability), `ece` (see
    expected_calibration_error, 15 bins), `positive_rate` (share of y_true == 1),
    `alert_rate` (share predicted positive) and `n` (number of samples, an int).

    Undefined values are nan rather than an exception. Both AUCs are nan when y_true contains
    one class only, precision when nothing is predicted positive, recall when y_true has no
    positive, and F1 when y_true has no positive and nothing is predicted positive.
    """
    labels, scores = _validated_binary_pair(y_true, probability)
    threshold = _validated_unit_value("threshold", threshold)
    predicted = (scores >= threshold).astype(int)
    roc_auc, pr_auc = _ranking_aucs(labels, scores)

    return {
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "f1": float(f1_score(labels, predicted, zero_division=np.nan)),
        "precision": float(precision_score(labels, predicted, zero_division=np.nan)),
        "recall": float(recall_score(labels, predicted, zero_division=np.nan)),
        "brier": float(np.mean((scores - labels) ** 2)),
        "ece": _calibration_gap(scores, labels.astype(float), DEFAULT_N_BINS),
        "positive_rate": float(labels.mean()),
        "alert_rate": float(predicted.mean()),
        "n": labels.size,
    }


def _ranking_aucs(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    # Both AUCs need positives and negatives. With positives only, average precision would be 1
    # for any scores and so carries no information about the model, which is why it is nan too.
    if np.unique(labels).size < 2:
        return float("nan"), float("nan")
    return float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores))


# ---------------------------------------------------------------------------------------------
# Calibration


def expected_calibration_error(
    y_true: ArrayLike, probability: ArrayLike, n_bins: int = DEFAULT_N_BINS
) -> float:
    """Compute the expected calibration error (ECE) of binary probabilities.

    `y_true` has shape [n] with values 0/1, `probability` has shape [n]. The probabilities fall
    into `n_bins` equal-width bins on [0, 1]. Bin k contains k/n_bins <= p < (k+1)/n_bins, and
    the last bin also contains p = 1. In each bin the accuracy is the share of positives and the
    confidence is the mean probability. ECE is the mean of |accuracy - confidence| over bins,
    weighted by the share of samples in the bin, so it lies in [0, 1] and empty bins add 0.
    """
    labels, scores = _validated_binary_pair(y_true, probability)
    n_bins = _validated_n_bins(n_bins)
    return _calibration_gap(scores, labels.astype(float), n_bins)


def multiclass_ece(
    y_true_index: ArrayLike, probabilities: ArrayLike, n_bins: int = DEFAULT_N_BINS
) -> float:
    """Compute the expected calibration error of the top-class confidence of a classifier.

    `y_true_index` has shape [n] with class indices, `probabilities` has shape [n, k] with rows
    summing to 1. The confidence of a sample is its largest probability and its outcome is 1
    when the argmax class is the true class. Binning and weighting are those of
    expected_calibration_error, with the share of correct predictions as the accuracy.
    """
    indices, matrix = _validated_multiclass_pair(y_true_index, probabilities)
    n_bins = _validated_n_bins(n_bins)
    confidence = matrix.max(axis=1)
    correct = (matrix.argmax(axis=1) == indices).astype(float)
    return _calibration_gap(confidence, correct, n_bins)


def _calibration_gap(confidence: np.ndarray, outcome: np.ndarray, n_bins: int) -> float:
    interior_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bin_index = np.searchsorted(interior_edges, confidence, side="right")
    outcome_sums = np.bincount(bin_index, weights=outcome, minlength=n_bins)
    confidence_sums = np.bincount(bin_index, weights=confidence, minlength=n_bins)

    # (n_b / n) * |sum_b(outcome) / n_b - sum_b(confidence) / n_b| reduces to
    # |sum_b(outcome) - sum_b(confidence)| / n, which also needs no guard for empty bins.
    return float(np.abs(outcome_sums - confidence_sums).sum() / confidence.size)


# ---------------------------------------------------------------------------------------------
# Multi-class classification


def multiclass_metrics(
    y_true_index: ArrayLike, probabilities: ArrayLike, class_names: Sequence[str]
) -> dict[str, float]:
    """Compute accuracy, macro scores, AUC, Brier score and ECE of a multi-class classifier.

    `y_true_index` has shape [n] with indices into `class_names`, `probabilities` has shape
    [n, k] with column j the probability of class_names[j] and rows summing to 1. The
    predicted class is the argmax.

    Keys: `macro_f1`, `accuracy`, `macro_recall`, `roc_auc_ovr_macro` (mean one-vs-rest ROC
    AUC), `brier` (mean over samples of the sum over classes of (p - one_hot)^2, in [0, 2]),
    `ece` (see multiclass_ece, 15 bins), `f1_<class name>` per class and `n` (an int).

    A per-class F1 or recall that is undefined is nan and left out of its macro mean. F1 is
    undefined for a class absent from both y_true and the predictions, and recall for a class
    absent from y_true. The AUC mean covers the classes that are present in y_true without
    being all of it, and is nan when there is none.
    """
    indices, matrix = _validated_multiclass_pair(y_true_index, probabilities)
    names = _validated_class_names(class_names, matrix.shape[1])
    predicted = matrix.argmax(axis=1)
    labels = list(range(len(names)))
    per_class_f1 = f1_score(indices, predicted, labels=labels, average=None, zero_division=np.nan)
    one_hot = np.eye(len(names))[indices]

    metrics: dict[str, float] = {
        "macro_f1": float(
            f1_score(indices, predicted, labels=labels, average="macro", zero_division=np.nan)
        ),
        "accuracy": float(np.mean(predicted == indices)),
        "macro_recall": float(
            recall_score(indices, predicted, labels=labels, average="macro", zero_division=np.nan)
        ),
        "roc_auc_ovr_macro": _one_vs_rest_auc_macro(indices, matrix, names),
        "brier": float(np.mean(np.sum((matrix - one_hot) ** 2, axis=1))),
        "ece": _calibration_gap(
            matrix.max(axis=1), (predicted == indices).astype(float), DEFAULT_N_BINS
        ),
    }
    for name, value in zip(names, per_class_f1, strict=True):
        metrics[f"f1_{name}"] = float(value)
    metrics["n"] = indices.size
    return metrics


def _one_vs_rest_auc_macro(indices: np.ndarray, matrix: np.ndarray, names: list[str]) -> float:
    # sklearn's multi_class="ovr" raises when a class is missing from y_true. Averaging over the
    # classes where the AUC is defined keeps a small evaluation split usable.
    aucs = []
    skipped = []
    for column, name in enumerate(names):
        is_class = indices == column
        if is_class.all() or not is_class.any():
            skipped.append(name)
            continue
        aucs.append(roc_auc_score(is_class, matrix[:, column]))

    if skipped:
        logger.warning(
            "roc_auc_ovr_macro averages %d of %d classes; no one-vs-rest AUC for %s because "
            "y_true has no sample of the class or only samples of it",
            len(aucs),
            len(names),
            ", ".join(skipped),
        )
    return float(np.mean(aucs)) if aucs else float("nan")


# ---------------------------------------------------------------------------------------------
# Thresholds


def choose_threshold_f1(y_true: ArrayLike, probability: ArrayLike) -> float:
    """Return the threshold that maximises F1 on the given (validation) data.

    `y_true` has shape [n] with values 0/1, `probability` has shape [n]. The candidates are the
    distinct probabilities of the precision-recall curve, and a sample counts as positive when
    its probability is >= the threshold. Among thresholds whose F1 ties with the maximum, the
    highest wins, since it raises fewer alerts for the same F1. Without any positive sample F1
    is 0 everywhere, so this logs a warning and returns FALLBACK_THRESHOLD (0.5).
    """
    labels, scores = _validated_binary_pair(y_true, probability)
    if not labels.any():
        logger.warning(
            "choose_threshold_f1: y_true has no positive sample among %d, so every threshold "
            "has F1 0; returning the fallback threshold %.2f",
            labels.size,
            FALLBACK_THRESHOLD,
        )
        return FALLBACK_THRESHOLD

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    # The last (precision 1, recall 0) point of the curve belongs to no threshold.
    precision = precision[:-1]
    recall = recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2.0 * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )

    best = np.flatnonzero(f1 >= f1.max() - F1_TIE_TOLERANCE)
    return float(thresholds[best].max())


def threshold_for_recall(y_true: ArrayLike, probability: ArrayLike, recall: float) -> float:
    """Return the highest threshold whose recall on the given data is >= `recall`.

    `y_true` has shape [n] with values 0/1, `probability` has shape [n], and `recall` is the
    target in (0, 1]. The result is always one of the probabilities of a positive sample, and
    a sample counts as positive when its probability is >= the threshold. Raises ValueError
    when y_true has no positive sample, because recall is then undefined.
    """
    labels, scores = _validated_binary_pair(y_true, probability)
    target = _validated_recall_target(recall)
    positive_scores = np.sort(scores[labels == 1])[::-1]
    if positive_scores.size == 0:
        raise ValueError(
            f"y_true has no positive sample among {labels.size}, so no threshold has a recall; "
            "pass data that contains at least one positive"
        )

    # Lowering the threshold to the k-th highest positive score catches exactly k positives or
    # more (ties), so the first k with k / n_positive >= target gives the highest threshold.
    achieved = np.arange(1, positive_scores.size + 1) / positive_scores.size
    needed = int(np.argmax(achieved >= target))
    return float(positive_scores[needed])


# ---------------------------------------------------------------------------------------------
# Lead time


@dataclass(frozen=True)
class LeadTimeReport:
    """Lead time of alerts before customer dissatisfaction, counted in customer turns.

    A conversation reaches dissatisfaction at its first dissatisfied customer turn k. It is
    caught when some customer turn j <= k alerts, with lead k - j for the first such j, and
    missed otherwise. Alerts after turn k are not scored. A conversation that never reaches
    dissatisfaction but alerts on any turn is a false alarm.
    """

    n_conversations: int
    """Conversations that reach dissatisfaction."""
    caught: int
    missed: int
    catch_rate: float
    """caught / n_conversations, nan when n_conversations is 0."""
    mean_lead_turns: float
    """Mean lead over caught conversations, nan when none is caught."""
    median_lead_turns: float
    """Median lead over caught conversations, nan when none is caught."""
    histogram: dict[int, int]
    """Number of caught conversations per lead, in increasing lead order."""
    n_without_dissatisfaction: int
    """Conversations that never reach dissatisfaction, including those without turns."""
    false_alarm_conversations: int
    false_alarm_rate: float
    """false_alarm_conversations / n_without_dissatisfaction, nan when that is 0."""

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a dict of plain Python values, with a copy of the histogram."""
        return asdict(self)


def lead_times(
    conversations: Sequence[tuple[Sequence[float], Sequence[bool]]], threshold: float
) -> LeadTimeReport:
    """Measure how many customer turns ahead of dissatisfaction the alerts fire.

    Each conversation is a pair (probabilities, dissatisfied) of equal length, one entry per
    customer turn in order: the model's probability at that turn and whether the customer is
    dissatisfied there (satisfaction rating <= 2). A turn alerts when its probability is
    >= threshold. See LeadTimeReport for how conversations are scored. A conversation with no
    customer turn is allowed and counts as one that never reaches dissatisfaction.
    """
    threshold = _validated_unit_value("threshold", threshold)
    conversations = list(conversations)
    if not conversations:
        raise ValueError("conversations is empty; pass at least one conversation")

    leads: list[int] = []
    missed = 0
    n_without_dissatisfaction = 0
    false_alarms = 0
    for position, conversation in enumerate(conversations):
        scores, dissatisfied = _validated_conversation(position, conversation)
        alerts = scores >= threshold

        if dissatisfied.any():
            first_dissatisfied = int(np.argmax(dissatisfied))
            alerted_turns = np.flatnonzero(alerts[: first_dissatisfied + 1])
            if alerted_turns.size:
                leads.append(first_dissatisfied - int(alerted_turns[0]))
            else:
                missed += 1
        else:
            n_without_dissatisfaction += 1
            false_alarms += int(alerts.any())

    return _lead_time_report(leads, missed, n_without_dissatisfaction, false_alarms)


def _lead_time_report(
    leads: list[int], missed: int, n_without_dissatisfaction: int, false_alarms: int
) -> LeadTimeReport:
    n_conversations = len(leads) + missed
    lead_counts = Counter(leads)
    return LeadTimeReport(
        n_conversations=n_conversations,
        caught=len(leads),
        missed=missed,
        catch_rate=_ratio(len(leads), n_conversations),
        mean_lead_turns=float(np.mean(leads)) if leads else float("nan"),
        median_lead_turns=float(np.median(leads)) if leads else float("nan"),
        histogram={lead: lead_counts[lead] for lead in sorted(lead_counts)},
        n_without_dissatisfaction=n_without_dissatisfaction,
        false_alarm_conversations=false_alarms,
        false_alarm_rate=_ratio(false_alarms, n_without_dissatisfaction),
    )


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def _validated_conversation(position: int, conversation: Any) -> tuple[np.ndarray, np.ndarray]:
    name = f"conversations[{position}]"
    if isinstance(conversation, str | bytes) or not isinstance(conversation, Sequence):
        raise ValueError(
            f"{name} is a {type(conversation).__name__}; pass a pair "
            "(per-customer-turn probabilities, per-customer-turn dissatisfied flags)"
        )
    if len(conversation) != 2:
        raise ValueError(
            f"{name} has {len(conversation)} items; pass a pair "
            "(per-customer-turn probabilities, per-customer-turn dissatisfied flags)"
        )

    scores = _as_probability_vector(f"{name} probabilities", conversation[0], allow_empty=True)
    dissatisfied = _as_binary_vector(f"{name} dissatisfied", conversation[1], allow_empty=True)
    _require_same_length(
        f"{name} probabilities", scores.size, f"{name} dissatisfied", dissatisfied.size
    )
    return scores, dissatisfied.astype(bool)


# ---------------------------------------------------------------------------------------------
# Input validation


def _validated_binary_pair(
    y_true: ArrayLike, probability: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    labels = _as_binary_vector("y_true", y_true)
    scores = _as_probability_vector("probability", probability)
    _require_same_length("y_true", labels.size, "probability", scores.size)
    return labels, scores


def _validated_multiclass_pair(
    y_true_index: ArrayLike, probabilities: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    matrix = _as_probability_matrix("probabilities", probabilities)
    indices = _as_class_indices("y_true_index", y_true_index, matrix.shape[1])
    _require_same_length("y_true_index", indices.size, "probabilities", matrix.shape[0])
    return indices, matrix


def _as_float_array(name: str, values: ArrayLike) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name} is not numeric ({error}); pass a sequence or array of numbers"
        ) from None


def _as_vector(name: str, values: ArrayLike, *, allow_empty: bool) -> np.ndarray:
    array = _as_float_array(name, values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} has shape {array.shape}; pass a 1-D sequence with one value per sample"
        )
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty; pass at least one sample")
    return array


def _as_probability_vector(
    name: str, values: ArrayLike, *, allow_empty: bool = False
) -> np.ndarray:
    array = _as_vector(name, values, allow_empty=allow_empty)
    _require_unit_interval(name, array)
    return array


def _as_binary_vector(name: str, values: ArrayLike, *, allow_empty: bool = False) -> np.ndarray:
    array = _as_vector(name, values, allow_empty=allow_empty)
    invalid = np.flatnonzero((array != 0) & (array != 1))
    if invalid.size:
        index = int(invalid[0])
        value = float(array[index])
        raise ValueError(
            f"{name}[{index}] = {value!r} is not a binary label; pass 0/1 or False/True with 1 "
            "for the positive class"
        )
    return array.astype(int)


def _as_probability_matrix(name: str, values: ArrayLike) -> np.ndarray:
    matrix = _as_float_array(name, values)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError(
            f"{name} has shape {matrix.shape}; pass a 2-D array [n_samples, n_classes] with at "
            "least two classes"
        )
    if matrix.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one sample")
    _require_unit_interval(name, matrix)

    row_sums = matrix.sum(axis=1)
    invalid = np.flatnonzero(np.abs(row_sums - 1.0) > ROW_SUM_TOLERANCE)
    if invalid.size:
        row = int(invalid[0])
        row_sum = float(row_sums[row])
        raise ValueError(
            f"{name}[{row}] sums to {row_sum!r}; every row must sum to 1 within "
            f"{ROW_SUM_TOLERANCE}, so apply softmax to logits first"
        )
    return matrix


def _as_class_indices(name: str, values: ArrayLike, n_classes: int) -> np.ndarray:
    array = _as_vector(name, values, allow_empty=False)
    invalid = np.flatnonzero((array != np.round(array)) | (array < 0) | (array >= n_classes))
    if invalid.size:
        index = int(invalid[0])
        value = float(array[index])
        raise ValueError(
            f"{name}[{index}] = {value!r} is not a class index; pass integers in "
            f"[0, {n_classes - 1}], the column of the true class in probabilities"
        )
    return array.astype(int)


def _require_unit_interval(name: str, array: np.ndarray) -> None:
    inside = (array >= 0.0) & (array <= 1.0)
    if inside.all():
        return
    position = tuple(int(axis) for axis in np.argwhere(~inside)[0])
    index = ", ".join(str(axis) for axis in position)
    value = float(array[position])
    raise ValueError(
        f"{name}[{index}] = {value!r} is outside [0, 1]; pass probabilities, not logits, "
        "scores or percentages"
    )


def _require_same_length(name_a: str, length_a: int, name_b: str, length_b: int) -> None:
    if length_a != length_b:
        raise ValueError(
            f"{name_a} has {length_a} samples but {name_b} has {length_b}; pass one entry of "
            f"each per sample"
        )


def _validated_unit_value(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name} = {value!r} is not a number; pass a float in [0, 1]")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} = {number!r} is outside [0, 1]; pass a float in [0, 1]")
    return number


def _validated_recall_target(recall: float) -> float:
    target = _validated_unit_value("recall", recall)
    if target == 0.0:
        raise ValueError(
            "recall = 0.0 is met by every threshold; pass a target recall in (0, 1]"
        )
    return target


def _validated_n_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins = {n_bins!r} is invalid; pass an integer >= 1")
    return int(n_bins)


def _validated_class_names(class_names: Sequence[str], n_classes: int) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise ValueError(
            f"class_names = {class_names!r} is not a sequence of names; pass one string per "
            "column of probabilities"
        )
    names = list(class_names)
    if len(names) != n_classes:
        raise ValueError(
            f"class_names has {len(names)} names but probabilities has {n_classes} columns; "
            "pass one name per column, in column order"
        )
    for position, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"class_names[{position}] = {name!r} is invalid; pass a non-empty string"
            )
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(
            f"class_names repeats {', '.join(duplicates)}; every class needs a distinct name "
            "because it becomes the f1_<class name> key"
        )
    return names
