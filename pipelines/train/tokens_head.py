"""Fit the escalation head on turn sequence features (sparse TF-IDF blocks plus context values).

The head is the product's head type, a sigmoid-calibrated, class-balanced logistic
regression. Unlike the MiniLM head it has no StandardScaler by default. The TF-IDF blocks are
L2-normalised rows and the context values are logs, flags and similarities of unit scale, while
dividing a rare n-gram by its tiny standard deviation would blow it up. MaxAbsScaler is the
option that keeps sparse rows sparse. A ColumnTransformer scaling only the context columns is
not used because, fitted on sparse rows, it fails on the dense rows of the ONNX parity check
(scikit-learn 1.9). skl2onnx converts the whole pipeline, so serving runs it with onnxruntime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler

from pipelines.evaluate.metrics import choose_threshold_f1

logger = logging.getLogger(__name__)

MAX_ITER = 2_000


@dataclass(frozen=True)
class FittedTokenHead:
    """A fitted head, the threshold chosen on its training rows, and how it was chosen."""

    estimator: Pipeline
    threshold: float
    out_of_fold_probability: np.ndarray


SCALERS: tuple[str, ...] = ("none", "maxabs")


def build_token_head(c: float, splits: list[tuple[np.ndarray, np.ndarray]],
                     seed: int, scaler: str = "none") -> Pipeline:
    """Return the unfitted head: the scaler (`none` or `maxabs`), then calibrated logistic
    regression.

    `splits` are the (train, held-out) row indices the calibration uses. Pass splits grouped
    by conversation, because turns of one conversation are alike, so a calibrator fitted on
    turns whose neighbours were in training would be overconfident.
    """
    if scaler not in SCALERS:
        raise ValueError(f"scaler {scaler!r} is invalid; use one of {', '.join(SCALERS)}")
    base = LogisticRegression(C=c, max_iter=MAX_ITER, class_weight="balanced",
                              solver="liblinear", random_state=seed)
    calibrated = CalibratedClassifierCV(base, method="sigmoid", cv=splits, ensemble=False)
    if scaler == "none":
        return Pipeline([("classify", calibrated)])
    return Pipeline([("scale", MaxAbsScaler()), ("classify", calibrated)])


def fit_token_head(
    features: sparse.csr_matrix,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    c: float,
    folds: int = 3,
    seed: int = 13,
    scaler: str = "none",
) -> FittedTokenHead:
    """Fit the head on training rows and choose its threshold on their out-of-fold predictions.

    The threshold maximises F1 of the positive class over calibrated probabilities that each
    row received from a model that never saw its conversation, so no evaluation row ever
    influences it. `groups` contains one conversation id per row.
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups)
    _check_rows(features, labels, groups, folds)

    splits = _grouped_splits(labels, groups, folds)
    model = build_token_head(c, splits, seed, scaler)
    model.fit(features, labels)

    decision = _out_of_fold_decision(model, features, labels, splits, c, seed)
    calibrator = model.named_steps["classify"].calibrated_classifiers_[0].calibrators[0]
    probability = np.asarray(calibrator.predict(decision), dtype=np.float64)
    threshold = float(choose_threshold_f1(labels, probability))
    logger.info("token head C=%g: %d rows, %d conversations, threshold %.4f", c, len(labels),
                len(np.unique(groups)), threshold)
    return FittedTokenHead(model, threshold, probability)


def predict_probability(model: Pipeline, features: Any) -> np.ndarray:
    """Return P(handoff) for each row."""
    return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)


def _out_of_fold_decision(model: Pipeline, features: sparse.csr_matrix, labels: np.ndarray,
                          splits: list[tuple[np.ndarray, np.ndarray]], c: float,
                          seed: int) -> np.ndarray:
    # The same splits and the same fitted scaler as inside CalibratedClassifierCV, so these
    # are the decision values its sigmoid calibrator was fitted on.
    scale = model.named_steps.get("scale")
    scaled = scale.transform(features) if scale is not None else features
    decision = np.zeros(len(labels), dtype=np.float64)
    for train_rows, held_out in splits:
        base = LogisticRegression(C=c, max_iter=MAX_ITER, class_weight="balanced",
                                  solver="liblinear", random_state=seed)
        base.fit(scaled[train_rows], labels[train_rows])
        decision[held_out] = base.decision_function(scaled[held_out])
    return decision


def _grouped_splits(labels: np.ndarray, groups: np.ndarray,
                    folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter = GroupKFold(n_splits=folds)
    splits = []
    for index, (train_rows, held_out) in enumerate(splitter.split(labels, labels, groups)):
        if len(np.unique(labels[train_rows])) < 2:
            raise ValueError(f"calibration fold {index + 1} of {folds} has training rows of one "
                             "class only; use more conversations or fewer calibration folds")
        splits.append((train_rows, held_out))
    return splits


def _check_rows(features: Any, labels: np.ndarray, groups: np.ndarray, folds: int) -> None:
    if features.shape[0] != labels.shape[0] or groups.shape[0] != labels.shape[0]:
        raise ValueError(f"features have {features.shape[0]} rows, labels {labels.shape[0]} and "
                         f"groups {groups.shape[0]}; pass one label and one group per row")
    if len(np.unique(labels)) < 2:
        raise ValueError("the training rows hold one class only; the head needs handoff and "
                         "normal turns")
    conversations = len(np.unique(groups))
    if folds < 2 or conversations < folds:
        raise ValueError(f"calibration needs 2 or more folds and at least one conversation per "
                         f"fold; got {folds} folds for {conversations} conversations")
