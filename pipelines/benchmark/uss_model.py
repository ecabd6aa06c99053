"""The rating head of the USS benchmark: 5-class logistic regression and its decision rule.

The head is a scikit-learn Pipeline(StandardScaler, LogisticRegression) over the product's
FeatureVector, the same estimator family as the escalation head, so skl2onnx exports it and
onnxruntime serves it. Every choice (C, class weighting, the decision rule) is made on
out-of-fold predictions inside the training rows, never on the rows it is tested on.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipelines.benchmark.cv import contiguous_subfolds
from pipelines.evaluate.metrics import choose_threshold_f1
from pipelines.evaluate.satisfaction_metrics import (
    DISSATISFIED_AT_OR_BELOW,
    RATINGS,
    satisfaction_metrics,
)

logger = logging.getLogger(__name__)

MAX_ITER = 2_000
# Exponents of the class prior divided out of the probabilities before the argmax: 0 keeps the
# head's own argmax, 1 is the Bayes rule for equal class priors, which is what UAR rewards.
PRIOR_POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Added to class frequencies and probabilities before taking logs, so an unseen level is
# improbable instead of impossible.
SMOOTHING = 1e-6


@dataclass(frozen=True)
class RatingRule:
    """Decision rule that turns a row of rating probabilities into one predicted rating.

    A turn is predicted dissatisfied (rating 1 or 2) when P(rating <= 2) reaches
    `dissatisfied_threshold`. The rating within the chosen side is the argmax of
    log P(level) - prior_power * log prior(level), with `log_prior` from the training rows.
    """

    prior_power: float
    dissatisfied_threshold: float
    log_prior: np.ndarray

    def predict(self, probabilities: np.ndarray) -> np.ndarray:
        """Return the predicted 1-5 rating of each row of [n, 5] probabilities."""
        scores = np.log(probabilities + SMOOTHING) - self.prior_power * self.log_prior
        dissatisfied = probabilities[:, :DISSATISFIED_AT_OR_BELOW].sum(axis=1) >= \
            self.dissatisfied_threshold
        low = np.argmax(scores[:, :DISSATISFIED_AT_OR_BELOW], axis=1)
        high = DISSATISFIED_AT_OR_BELOW + np.argmax(scores[:, DISSATISFIED_AT_OR_BELOW:], axis=1)
        return np.where(dissatisfied, low, high) + RATINGS[0]


@dataclass(frozen=True)
class RatingCandidate:
    """One point of the hyperparameter grid of the rating head."""

    c: float
    class_weight: str | None

    def label(self) -> str:
        """Return a short name such as `C=0.05,balanced` for logs and reports."""
        return f"C={self.c:g},{self.class_weight or 'unweighted'}"


@dataclass(frozen=True)
class FittedRatingHead:
    """A fitted rating head, the rule chosen for it and the out-of-fold scores behind both."""

    estimator: Pipeline
    candidate: RatingCandidate
    rule: RatingRule
    selection: dict[str, Any] = field(default_factory=dict)


def build_rating_estimator(candidate: RatingCandidate, seed: int) -> Pipeline:
    """Return an unfitted Pipeline(StandardScaler, multinomial LogisticRegression)."""
    return Pipeline([
        ("scale", StandardScaler()),
        ("classify", LogisticRegression(C=candidate.c, class_weight=candidate.class_weight,
                                        max_iter=MAX_ITER, random_state=seed)),
    ])


def level_probabilities(classes: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Spread [n, n_classes] probabilities over the five levels; absent levels get 0.

    A training set can lack rating 1 or 5 (they are rare in USS), so the head may know fewer
    than five classes.
    """
    result = np.zeros((probabilities.shape[0], len(RATINGS)), dtype=np.float64)
    for column, level in enumerate(classes):
        result[:, int(level) - RATINGS[0]] = probabilities[:, column]
    return result


def fit_rating_head(
    features: np.ndarray,
    ratings: np.ndarray,
    *,
    candidates: list[RatingCandidate],
    inner_folds: int,
    seed: int,
) -> FittedRatingHead:
    """Choose a candidate and a decision rule on inner folds, then refit on all rows.

    The inner folds are contiguous blocks of the given rows. A candidate's out-of-fold
    probabilities choose the dissatisfied threshold (best F1 of P(rating <= 2)) and then the
    prior power (best UAR with that threshold). Candidates are compared by UAR plus
    dissatisfied F1 out of fold, the two figures the benchmark is judged on.
    """
    if not candidates:
        raise ValueError("the rating head needs at least one candidate (C, class weight)")
    rows = np.arange(len(ratings))
    log_prior = _log_prior(ratings)

    best: tuple[float, RatingCandidate, RatingRule, dict[str, float]] | None = None
    scores: dict[str, dict[str, float]] = {}
    for candidate in candidates:
        out_of_fold = _out_of_fold_probabilities(features, ratings, rows, candidate,
                                                 inner_folds, seed)
        rule, metrics = choose_rule(ratings, out_of_fold, log_prior)
        objective = metrics["uar"] + metrics["f1_dissatisfied"]
        scores[candidate.label()] = {**metrics, "objective": objective}
        logger.debug("rating head %s: out-of-fold UAR %.4f, dissatisfied F1 %.4f",
                     candidate.label(), metrics["uar"], metrics["f1_dissatisfied"])
        if best is None or objective > best[0]:
            best = (objective, candidate, rule, metrics)

    assert best is not None  # candidates is non-empty
    _, candidate, rule, metrics = best
    estimator = build_rating_estimator(candidate, seed).fit(features, ratings)
    selection = {"chosen": candidate.label(), "out_of_fold": metrics, "grid": scores,
                 "prior_power": rule.prior_power,
                 "dissatisfied_threshold": rule.dissatisfied_threshold}
    return FittedRatingHead(estimator, candidate, rule, selection)


def choose_rule(
    ratings: np.ndarray, probabilities: np.ndarray, log_prior: np.ndarray
) -> tuple[RatingRule, dict[str, float]]:
    """Pick the dissatisfied threshold by F1, then the prior power by UAR, on held-out rows."""
    dissatisfied = (ratings <= DISSATISFIED_AT_OR_BELOW).astype(int)
    threshold = choose_threshold_f1(dissatisfied,
                                    np.clip(probabilities[:, :DISSATISFIED_AT_OR_BELOW].sum(1),
                                            0.0, 1.0))
    best: tuple[float, RatingRule, dict[str, float]] | None = None
    for power in PRIOR_POWERS:
        rule = RatingRule(prior_power=power, dissatisfied_threshold=threshold,
                          log_prior=log_prior)
        metrics = satisfaction_metrics(ratings.tolist(), rule.predict(probabilities).tolist())
        if best is None or metrics["uar"] > best[0]:
            best = (metrics["uar"], rule, metrics)
    assert best is not None  # PRIOR_POWERS is non-empty
    return best[1], best[2]


def candidate_grid(c_grid: list[float], class_weights: list[str | None]) -> list[RatingCandidate]:
    """Return every (C, class weight) pair as a candidate."""
    return [RatingCandidate(c, weight) for c, weight in itertools.product(c_grid, class_weights)]


def _out_of_fold_probabilities(
    features: np.ndarray, ratings: np.ndarray, rows: np.ndarray, candidate: RatingCandidate,
    inner_folds: int, seed: int,
) -> np.ndarray:
    result = np.zeros((len(rows), len(RATINGS)), dtype=np.float64)
    for fold in contiguous_subfolds(rows, inner_folds):
        model = build_rating_estimator(candidate, seed)
        model.fit(features[fold.train], ratings[fold.train])
        result[fold.test] = level_probabilities(model.classes_,
                                                model.predict_proba(features[fold.test]))
    return result


def _log_prior(ratings: np.ndarray) -> np.ndarray:
    counts = np.array([(ratings == level).sum() for level in RATINGS], dtype=np.float64)
    return np.log(counts / counts.sum() + SMOOTHING)
