"""MHCH handoff benchmark runs: train on one set of dialogues, predict every turn of another.

Each run fits the token encoder and the escalation head on the training dialogues alone and
chooses the threshold on their out-of-fold predictions, so nothing of the evaluated dialogues
reaches the model. Metrics follow Liu et al. (AAAI 2021): F1 of the handoff class, their Macro
F1 and AUC over utterances, and GT-I/II/III per dialogue, all times 100 as in their tables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from pipelines.evaluate.handoff_metrics import (
    golden_transfer_within_tolerance,
    handoff_auc,
    handoff_f1,
    macro_f1,
)
from pipelines.train.tokens import TokenEncoderSettings
from pipelines.train.tokens_bundle import TokenModelSettings, fit_token_model, save_token_model
from pipelines.train.tokens_head import predict_probability
from pipelines.train.tokens_table import turn_table
from serving.schema import Conversation

logger = logging.getLogger(__name__)

METRIC_KEYS = ("f1", "macro_f1", "auc", "gt_1", "gt_2", "gt_3")
THRESHOLD_RULES = ("f1", "f1_gt1")
# Candidate thresholds for the f1_gt1 rule: quantiles of the out-of-fold probabilities.
THRESHOLD_CANDIDATES = 200


@dataclass(frozen=True)
class MhchSettings:
    """Encoder, head and threshold settings of one benchmark configuration."""

    encoder: TokenEncoderSettings = field(default_factory=TokenEncoderSettings)
    c: float = 3.0
    scaler: str = "none"
    threshold_rule: str = "f1"
    calibration_folds: int = 3
    gt_lambda: float = 0.0
    seed: int = 13

    def describe(self) -> dict[str, Any]:
        """Return the settings as plain values for logs and MLflow parameters."""
        values = asdict(self)
        values["head"] = f"scaler {self.scaler} + CalibratedClassifierCV(" \
                         "LogisticRegression balanced liblinear, sigmoid, grouped folds)"
        values["threshold_rule"] = (
            "max F1" if self.threshold_rule == "f1" else "max mean of F1 and GT-I"
        ) + " on out-of-fold calibrated probabilities of the training dialogues"
        return values

    def model_settings(self) -> TokenModelSettings:
        """Return the encoder and head settings, without the benchmark's threshold rule."""
        return TokenModelSettings(encoder=self.encoder, c=self.c, scaler=self.scaler,
                                  calibration_folds=self.calibration_folds, seed=self.seed)


@dataclass(frozen=True)
class RunResult:
    """Metrics of one train-and-evaluate run, with counts and the threshold used."""

    metrics: dict[str, float | None]
    threshold: float
    train_dialogues: int
    test_dialogues: int
    test_turns: int
    seconds: float


def train_and_evaluate(train: Sequence[Conversation], test: Sequence[Conversation],
                       settings: MhchSettings, *, save_model: Path | None = None) -> RunResult:
    """Fit on `train`, predict every turn of `test`, and score the predictions.

    With `save_model`, the fitted model and its threshold are also written to that folder
    (see `pipelines.train.tokens_bundle.save_token_model`).
    """
    started = time.perf_counter()
    check_labelled(train, "training")
    check_labelled(test, "test")

    model = fit_token_model(train, settings.model_settings())
    train_rows, fitted = model.table, model.head

    threshold = fitted.threshold
    if settings.threshold_rule == "f1_gt1":
        threshold = threshold_f1_gt1(train_rows.labels, fitted.out_of_fold_probability,
                                     train_rows.conversation_ids, settings.gt_lambda)
    if save_model is not None:
        save_token_model(model, save_model, threshold=threshold,
                         threshold_rule=settings.describe()["threshold_rule"])

    test_rows = turn_table(test, model.encoder)
    probability = predict_probability(fitted.estimator, test_rows.features)
    predicted = (probability >= threshold).astype(np.int64)
    metrics = handoff_scores(test_rows.labels, probability, predicted,
                             test_rows.conversation_ids, gt_lambda=settings.gt_lambda)
    return RunResult(metrics, threshold, len(train), len(test), len(test_rows.labels),
                     time.perf_counter() - started)


def threshold_f1_gt1(labels: np.ndarray, probability: np.ndarray,
                     conversation_ids: np.ndarray, gt_lambda: float = 0.0) -> float:
    """Return the threshold that maximises the mean of F1 and GT-I on (training) predictions.

    F1 alone favours a low threshold that also flags turns near, but not at, the handoff; GT-I
    penalises each such extra flag, so the mean trades the two off.
    """
    candidates = np.unique(np.quantile(probability, np.linspace(0.0, 1.0, THRESHOLD_CANDIDATES)))
    best_threshold, best_score = float(candidates[-1]), -1.0
    for candidate in candidates:
        predicted = (probability >= candidate).astype(np.int64)
        scores = handoff_scores(labels, probability, predicted, conversation_ids,
                                gt_lambda=gt_lambda)
        score = ((scores["f1"] or 0.0) + (scores["gt_1"] or 0.0)) / 2.0
        if score > best_score:
            best_threshold, best_score = float(candidate), score
    return best_threshold


def cross_validate(conversations: Sequence[Conversation], folds: int,
                   settings: MhchSettings) -> list[RunResult]:
    """Run grouped k-fold cross-validation: each dialogue is evaluated once, by a model that
    was trained without it. Folds are drawn with `settings.seed`."""
    if folds < 2 or folds > len(conversations):
        raise ValueError(f"--folds {folds} is invalid for {len(conversations)} dialogues; use "
                         f"2 to {len(conversations)}")
    splitter = KFold(n_splits=folds, shuffle=True, random_state=settings.seed)
    results = []
    for number, (train_index, test_index) in enumerate(splitter.split(np.arange(
            len(conversations)))):
        train = [conversations[index] for index in train_index]
        test = [conversations[index] for index in test_index]
        result = train_and_evaluate(train, test, settings)
        logger.info("fold %d of %d: %d train and %d test dialogues, F1 %.1f, %.1f s",
                    number + 1, folds, len(train), len(test), result.metrics["f1"] or 0.0,
                    result.seconds)
        results.append(result)
    return results


def mean_metrics(results: Sequence[RunResult]) -> dict[str, float | None]:
    """Return the mean of each metric over runs (None where every run has it undefined)."""
    means: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        values = [value for result in results if (value := result.metrics[key]) is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


def handoff_scores(
    labels: np.ndarray, probability: np.ndarray, predicted: np.ndarray,
    conversation_ids: np.ndarray, *, gt_lambda: float = 0.0,
) -> dict[str, float | None]:
    """Return f1, macro_f1, auc and gt_1..gt_3, each times 100; auc is None with one class."""
    gold, guessed = _per_dialogue(labels, predicted, conversation_ids)
    truth = [int(label) for label in labels]
    decisions = [int(value) for value in predicted]
    auc = handoff_auc(truth, [float(value) for value in probability])
    scores: dict[str, float | None] = {
        "f1": 100.0 * handoff_f1(truth, decisions),
        "macro_f1": 100.0 * macro_f1(truth, decisions),
        "auc": None if np.isnan(auc) else 100.0 * auc,
    }
    for tolerance in (1, 2, 3):
        scores[f"gt_{tolerance}"] = golden_transfer_within_tolerance(
            gold, guessed, tolerance=tolerance, asymmetry=gt_lambda)
    return scores


def trivial_floors(conversations: Sequence[Conversation],
                   gt_lambda: float = 0.0) -> dict[str, dict[str, float | None]]:
    """Return the metrics of handing off at every turn and of never handing off."""
    labels = np.asarray([int(bool(turn.labels and turn.labels.handoff))
                         for conversation in conversations for turn in conversation.turns])
    ids = np.asarray([conversation.id for conversation in conversations
                      for _ in conversation.turns])
    floors = {}
    for name, constant in (("always_handoff", 1), ("never_handoff", 0)):
        predicted = np.full(labels.shape, constant, dtype=np.int64)
        floors[name] = handoff_scores(labels, predicted.astype(np.float64), predicted, ids,
                                      gt_lambda=gt_lambda)
    return floors


def _per_dialogue(labels: np.ndarray, predicted: np.ndarray,
                  conversation_ids: np.ndarray) -> tuple[list[list[int]], list[list[int]]]:
    gold: dict[str, list[int]] = {}
    guessed: dict[str, list[int]] = {}
    for conversation_id, label, prediction in zip(conversation_ids, labels, predicted,
                                                  strict=True):
        gold.setdefault(str(conversation_id), []).append(int(label))
        guessed.setdefault(str(conversation_id), []).append(int(prediction))
    return list(gold.values()), [guessed[key] for key in gold]


def check_labelled(conversations: Sequence[Conversation], role: str) -> None:
    if not conversations:
        raise ValueError(f"the {role} set has no dialogues")
    unlabelled = [conversation.id for conversation in conversations
                  if any(turn.labels is None or turn.labels.handoff is None
                         for turn in conversation.turns)]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} {role} dialogues have turns without a handoff "
                         f"label (first: {unlabelled[0]}); pass MHCH files, whose every turn "
                         "carries handoff_label")
