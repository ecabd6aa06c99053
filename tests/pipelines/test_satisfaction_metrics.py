"""Hand-computed checks of the USS satisfaction metrics: UAR, kappa, rho, dissatisfied F1."""

from __future__ import annotations

import math

import pytest

from pipelines.evaluate.satisfaction_metrics import satisfaction_metrics

GOLD = [3, 3, 2, 4]
PREDICTED = [3, 2, 2, 3]


def test_uar_over_present_levels() -> None:
    # Recall per gold level: 2 -> 1/1, 3 -> 1/2, 4 -> 0/1. Mean over the three levels = 1/2.
    assert satisfaction_metrics(GOLD, PREDICTED)["uar"] == pytest.approx(0.5)


def test_dissatisfied_f1() -> None:
    # Dissatisfied (<= 2): gold [F, F, T, F], predicted [F, T, T, F]. TP 1, FP 1, FN 0.
    # Precision 1/2, recall 1 -> F1 2/3.
    assert satisfaction_metrics(GOLD, PREDICTED)["f1_dissatisfied"] == pytest.approx(2 / 3)


def test_kappa_of_identical_ratings_is_one() -> None:
    assert satisfaction_metrics([1, 3, 5, 3], [1, 3, 5, 3])["kappa"] == pytest.approx(1.0)


def test_kappa_hand_computed() -> None:
    # Observed agreement 2/4. Marginals: gold {2: 1, 3: 2, 4: 1}, predicted {2: 2, 3: 2}.
    # Expected agreement (1*2 + 2*2) / 16 = 6/16. Kappa (1/2 - 3/8) / (1 - 3/8) = 1/5.
    assert satisfaction_metrics(GOLD, PREDICTED)["kappa"] == pytest.approx(0.2)


def test_rho_of_reversed_order_is_minus_one() -> None:
    assert satisfaction_metrics([1, 2, 3, 4], [5, 4, 3, 2])["rho"] == pytest.approx(-1.0)


def test_rho_of_constant_prediction_is_nan() -> None:
    assert math.isnan(satisfaction_metrics([1, 3, 5], [3, 3, 3])["rho"])


def test_rating_out_of_range_rejected() -> None:
    with pytest.raises(ValueError, match=r"predicted contains invalid ratings \[6\]"):
        satisfaction_metrics([1, 2], [1, 6])
