"""Metrics of machine-human chatting handoff (MHCH) as Liu et al. define them (AAAI 2021).

Labels are per utterance: 1 where the dialogue should be handed to a human. F1 is on the
handoff class. "Macro F1" is the harmonic mean of the macro-averaged precision and the
macro-averaged recall over both classes. GT-T (Golden Transfer within Tolerance) scores how
close the predicted handoff positions of each dialogue are to the gold ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score


def handoff_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Return F1 of the handoff class (label 1) over all utterances."""
    truth, predicted = _binary_pair(y_true, y_pred)
    _, _, f1, _ = precision_recall_fscore_support(truth, predicted, labels=[1],
                                                  average=None, zero_division=0)
    return float(f1[0])


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Return the harmonic mean of macro-averaged precision and macro-averaged recall.

    This is the authors' "Macro F1"; it differs from the mean of the per-class F1 scores.
    """
    truth, predicted = _binary_pair(y_true, y_pred)
    precision, recall, _, _ = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1], average=None, zero_division=0)
    macro_precision = float(np.mean(precision))
    macro_recall = float(np.mean(recall))
    if macro_precision + macro_recall == 0.0:
        return 0.0
    return 2 * macro_precision * macro_recall / (macro_precision + macro_recall)


def handoff_auc(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """Return ROC-AUC of handoff scores over all utterances, or nan with one class only."""
    truth = np.asarray(y_true, dtype=int)
    values = np.asarray(scores, dtype=float)
    if truth.shape != values.shape or truth.ndim != 1 or truth.size == 0:
        raise ValueError(f"y_true and scores must be non-empty 1-d arrays of one length, got "
                         f"shapes {list(truth.shape)} and {list(values.shape)}")
    if len(np.unique(truth)) < 2:
        return math.nan
    return float(roc_auc_score(truth, values))


def golden_transfer_within_tolerance(
    gold: Sequence[Sequence[int]],
    predicted: Sequence[Sequence[int]],
    *,
    tolerance: float,
    asymmetry: float = 0.0,
) -> float:
    """Return GT-T, averaged over dialogues and multiplied by 100.

    `gold` and `predicted` hold one 0/1 label sequence per dialogue. For one dialogue the
    score is the mean, over predicted handoff positions p, of the best
    exp(-(p - q)^2 / (2 t^2) / (1 - asymmetry * sign(p - q))) over gold positions q. A dialogue
    with no gold and no predicted handoff scores 1; one where exactly one side has none
    scores 0. A positive `asymmetry` (in [0, 1)) punishes late handoffs (p > q) more.
    """
    if tolerance <= 0:
        raise ValueError(f"tolerance is {tolerance}; it must be > 0 (1, 2 and 3 give GT-I, "
                         "GT-II and GT-III)")
    if not 0.0 <= asymmetry < 1.0:
        raise ValueError(f"asymmetry is {asymmetry}; it must be in [0, 1)")
    if len(gold) != len(predicted) or not gold:
        raise ValueError(f"gold has {len(gold)} dialogues and predicted {len(predicted)}; "
                         "pass the same, non-zero number of dialogues")

    scores = [
        _dialogue_score(gold_labels, predicted_labels, tolerance, asymmetry, index)
        for index, (gold_labels, predicted_labels) in enumerate(zip(gold, predicted,
                                                                    strict=True))
    ]
    return 100.0 * float(np.mean(scores))


def _dialogue_score(gold: Sequence[int], predicted: Sequence[int], tolerance: float,
                    asymmetry: float, index: int) -> float:
    if len(gold) != len(predicted):
        raise ValueError(f"dialogue {index}: {len(gold)} gold labels but {len(predicted)} "
                         "predicted labels")
    gold_positions = [position for position, label in enumerate(gold) if label == 1]
    predicted_positions = [position for position, label in enumerate(predicted) if label == 1]
    if not gold_positions and not predicted_positions:
        return 1.0
    if not gold_positions or not predicted_positions:
        return 0.0

    best_per_prediction = []
    for p in predicted_positions:
        candidates = []
        for q in gold_positions:
            direction = (p > q) - (p < q)
            exponent = (p - q) ** 2 / (2 * tolerance ** 2) / (1 - asymmetry * direction)
            candidates.append(math.exp(-exponent))
        best_per_prediction.append(max(candidates))
    return float(np.mean(best_per_prediction))


def _binary_pair(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true, dtype=int)
    predicted = np.asarray(y_pred, dtype=int)
    if truth.shape != predicted.shape or truth.ndim != 1 or truth.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty 1-d arrays of one length, got "
                         f"shapes {list(truth.shape)} and {list(predicted.shape)}")
    for name, values in (("y_true", truth), ("y_pred", predicted)):
        invalid = sorted(set(np.unique(values).tolist()) - {0, 1})
        if invalid:
            raise ValueError(f"{name} contains invalid labels {invalid}; handoff labels must "
                             "be 0 or 1")
    return truth, predicted
