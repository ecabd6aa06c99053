"""Tests of the USS benchmark's folds, rating head, decision rule and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.benchmark.cv import contiguous_folds, contiguous_subfolds
from pipelines.benchmark.uss_model import (
    RatingCandidate,
    RatingRule,
    candidate_grid,
    fit_rating_head,
    level_probabilities,
)
from pipelines.benchmark.uss_protocol import uar_all_levels
from pipelines.evaluate.satisfaction_metrics import satisfaction_metrics


@pytest.mark.parametrize(("n_rows", "n_folds"), [(10, 10), (23, 10), (100, 3), (7, 2)])
def test_contiguous_folds_cover_rows_once(n_rows: int, n_folds: int) -> None:
    folds = contiguous_folds(n_rows, n_folds)

    tested = np.concatenate([fold.test for fold in folds])
    assert tested.tolist() == list(range(n_rows))
    for fold in folds:
        assert np.all(np.diff(fold.test) == 1)
        assert not set(fold.train.tolist()) & set(fold.test.tolist())
        assert len(fold.train) + len(fold.test) == n_rows
    sizes = [len(fold.test) for fold in folds]
    assert max(sizes) - min(sizes) <= 1


def test_contiguous_folds_reject_too_few_rows() -> None:
    with pytest.raises(ValueError, match="cannot split 3 rows into 4 folds"):
        contiguous_folds(3, 4)


def test_contiguous_folds_reject_one_fold() -> None:
    with pytest.raises(ValueError, match="invalid number of folds 1"):
        contiguous_folds(10, 1)


def test_subfolds_stay_inside_given_rows() -> None:
    rows = np.array([0, 1, 2, 7, 8, 9, 20, 21, 22])

    subfolds = contiguous_subfolds(rows, 3)

    assert [fold.test.tolist() for fold in subfolds] == [[0, 1, 2], [7, 8, 9], [20, 21, 22]]
    assert subfolds[1].train.tolist() == [0, 1, 2, 20, 21, 22]


def test_level_probabilities_fill_absent_levels() -> None:
    classes = np.array([2, 3, 4])
    probabilities = np.array([[0.2, 0.5, 0.3]])

    spread = level_probabilities(classes, probabilities)

    assert spread.tolist() == [[0.0, 0.2, 0.5, 0.3, 0.0]]


def test_rule_threshold_decides_dissatisfied_side() -> None:
    rule = RatingRule(prior_power=0.0, dissatisfied_threshold=0.3,
                      log_prior=np.log(np.full(5, 0.2)))
    probabilities = np.array([
        [0.05, 0.30, 0.60, 0.05, 0.00],  # P(<= 2) = 0.35 reaches 0.3: rating 2 though 3 is likelier
        [0.00, 0.20, 0.70, 0.10, 0.00],  # P(<= 2) = 0.2: the argmax of 3-5
        [0.20, 0.15, 0.60, 0.05, 0.00],  # dissatisfied side, 1 beats 2
        [0.00, 0.00, 0.40, 0.10, 0.50],
    ])

    assert rule.predict(probabilities).tolist() == [2, 3, 1, 5]


def test_rule_prior_power_favours_rare_levels() -> None:
    log_prior = np.log(np.array([0.01, 0.05, 0.80, 0.13, 0.01]))
    probabilities = np.array([[0.0, 0.0, 0.6, 0.4, 0.0]])
    plain = RatingRule(prior_power=0.0, dissatisfied_threshold=1.0, log_prior=log_prior)
    balanced = RatingRule(prior_power=1.0, dissatisfied_threshold=1.0, log_prior=log_prior)

    assert plain.predict(probabilities).tolist() == [3]
    assert balanced.predict(probabilities).tolist() == [4]


def test_fit_rating_head_learns_separable_levels() -> None:
    generator = np.random.default_rng(3)
    ratings = np.repeat([2, 3, 4], 60)
    generator.shuffle(ratings)
    features = generator.normal(size=(len(ratings), 6)).astype(np.float32)
    features[:, 0] += 3.0 * (ratings - 3)

    fitted = fit_rating_head(features, ratings, candidates=candidate_grid([0.1, 1.0],
                                                                          ["balanced", None]),
                             inner_folds=3, seed=0)

    probabilities = level_probabilities(fitted.estimator.classes_,
                                        fitted.estimator.predict_proba(features))
    predicted = fitted.rule.predict(probabilities)
    assert satisfaction_metrics(ratings.tolist(), predicted.tolist())["uar"] > 0.9
    assert fitted.selection["chosen"] in {"C=0.1,balanced", "C=0.1,unweighted",
                                          "C=1,balanced", "C=1,unweighted"}
    assert len(fitted.selection["grid"]) == 4
    assert 0.0 <= fitted.rule.dissatisfied_threshold <= 1.0


def test_fit_rating_head_needs_candidates() -> None:
    with pytest.raises(ValueError, match="at least one candidate"):
        fit_rating_head(np.zeros((9, 2)), np.array([3] * 9), candidates=[], inner_folds=3,
                        seed=0)


def test_candidate_label_names_weighting() -> None:
    assert RatingCandidate(0.05, None).label() == "C=0.05,unweighted"
    assert RatingCandidate(2.0, "balanced").label() == "C=2,balanced"


def test_uar_all_levels_counts_absent_levels_as_zero() -> None:
    gold = np.array([2, 3, 3, 4])
    predicted = np.array([2, 3, 4, 4])

    # Recalls 1, 0.5, 1 on the three present levels; levels 1 and 5 count as 0.
    assert uar_all_levels(gold, predicted) == pytest.approx(2.5 / 5)
    assert satisfaction_metrics(gold.tolist(), predicted.tolist())["uar"] == \
        pytest.approx(2.5 / 3)
