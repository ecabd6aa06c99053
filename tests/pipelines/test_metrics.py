"""Tests of pipelines.evaluate.metrics against small examples computed by hand."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from pipelines.evaluate.metrics import (
    FALLBACK_THRESHOLD,
    LeadTimeReport,
    binary_metrics,
    choose_threshold_f1,
    expected_calibration_error,
    lead_times,
    multiclass_ece,
    multiclass_metrics,
    threshold_for_recall,
)

SENTIMENT_NAMES = ["negative", "neutral", "positive"]

# Four samples over three classes; argmax per row is 0, 1, 0, 2 and the true classes 0, 2, 0, 1.
THREE_CLASS_PROBABILITIES = [
    [0.7, 0.2, 0.1],
    [0.1, 0.6, 0.3],
    [0.4, 0.35, 0.25],
    [0.3, 0.3, 0.4],
]
THREE_CLASS_TRUE = [0, 2, 0, 1]


# ---------------------------------------------------------------------------------------------
# binary_metrics


@pytest.fixture
def four_sample_metrics() -> dict[str, float]:
    # Sorted by probability: 0.8 positive, 0.6 negative, 0.4 positive, 0.1 negative.
    return binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.8], threshold=0.5)


def test_binary_metrics_roc_auc(four_sample_metrics: dict[str, float]) -> None:
    # Positive-negative pairs ranked right: (0.4>0.1), (0.8>0.1), (0.8>0.6), not (0.4>0.6) = 3/4.
    assert four_sample_metrics["roc_auc"] == pytest.approx(0.75)


def test_binary_metrics_pr_auc(four_sample_metrics: dict[str, float]) -> None:
    # Recall steps of 1/2 at 0.8 (precision 1/1) and at 0.4 (precision 2/3): 1/2 + 1/3 = 5/6.
    assert four_sample_metrics["pr_auc"] == pytest.approx(5 / 6)


def test_binary_metrics_threshold_scores(four_sample_metrics: dict[str, float]) -> None:
    # Alerts at >= 0.5 are 0.6 (negative) and 0.8 (positive): TP 1, FP 1, FN 1 (the 0.4).
    assert four_sample_metrics["precision"] == pytest.approx(0.5)  # 1 / (1 + 1)
    assert four_sample_metrics["recall"] == pytest.approx(0.5)  # 1 / (1 + 1)
    assert four_sample_metrics["f1"] == pytest.approx(0.5)  # 2 * 0.5 * 0.5 / (0.5 + 0.5)


def test_binary_metrics_brier(four_sample_metrics: dict[str, float]) -> None:
    # (0.1^2 + 0.6^2 + 0.6^2 + 0.2^2) / 4 = (0.01 + 0.36 + 0.36 + 0.04) / 4 = 0.1925.
    assert four_sample_metrics["brier"] == pytest.approx(0.1925)


def test_binary_metrics_ece(four_sample_metrics: dict[str, float]) -> None:
    # 15 bins leave each sample alone in its bin: (0.1 + 0.6 + |1-0.4| + |1-0.8|) / 4 = 1.5 / 4.
    assert four_sample_metrics["ece"] == pytest.approx(0.375)


def test_binary_metrics_rates_and_count(four_sample_metrics: dict[str, float]) -> None:
    assert four_sample_metrics["positive_rate"] == pytest.approx(0.5)  # 2 positives of 4
    assert four_sample_metrics["alert_rate"] == pytest.approx(0.5)  # 0.6 and 0.8 of 4
    assert four_sample_metrics["n"] == 4


def test_binary_metrics_keys(four_sample_metrics: dict[str, float]) -> None:
    expected = {
        "roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece", "positive_rate",
        "alert_rate", "n",
    }
    assert set(four_sample_metrics) == expected


def test_binary_metrics_probability_equal_threshold_alerts() -> None:
    metrics = binary_metrics([1, 0], [0.5, 0.2], threshold=0.5)
    assert metrics["alert_rate"] == pytest.approx(0.5)  # 0.5 >= 0.5 alerts, 0.2 does not
    assert metrics["recall"] == pytest.approx(1.0)


@pytest.mark.parametrize("label", [0, 1])
def test_binary_metrics_one_class_auc_nan(label: int) -> None:
    metrics = binary_metrics([label] * 3, [0.2, 0.5, 0.9], threshold=0.5)
    assert math.isnan(metrics["roc_auc"])
    assert math.isnan(metrics["pr_auc"])
    assert metrics["brier"] >= 0.0


def test_binary_metrics_no_alert_precision_nan() -> None:
    metrics = binary_metrics([0, 1], [0.1, 0.2], threshold=0.9)
    assert math.isnan(metrics["precision"])  # 0 / 0 alerts
    assert metrics["recall"] == 0.0  # 0 of 1 positive caught


def test_binary_metrics_accepts_booleans() -> None:
    from_bools = binary_metrics([False, True], [0.3, 0.7], threshold=0.5)
    from_ints = binary_metrics([0, 1], [0.3, 0.7], threshold=0.5)
    assert from_bools == from_ints


# ---------------------------------------------------------------------------------------------
# expected_calibration_error and multiclass_ece


def test_ece_four_samples_two_bins() -> None:
    # Bin [0, 0.5): p 0.2, 0.4 with y 0, 1: |1/2 - 0.3| = 0.2, weight 2/4, adds 0.1.
    # Bin [0.5, 1]: p 0.7, 0.9 with y 0, 1: |1/2 - 0.8| = 0.3, weight 2/4, adds 0.15.
    ece = expected_calibration_error([0, 1, 0, 1], [0.2, 0.4, 0.7, 0.9], n_bins=2)
    assert ece == pytest.approx(0.25)


def test_ece_bin_edge_belongs_to_upper_bin() -> None:
    # 0.5 opens bin [0.5, 1], so the bins are {0.25, y=0} and {0.5, y=1}:
    # 0.5 * |0 - 0.25| + 0.5 * |1 - 0.5| = 0.125 + 0.25. Had 0.5 joined the lower bin it
    # would give |1/2 - 0.375| = 0.125.
    ece = expected_calibration_error([0, 1], [0.25, 0.5], n_bins=2)
    assert ece == pytest.approx(0.375)


def test_ece_probability_one_in_last_bin() -> None:
    # p = 1 lands in the last bin, whose accuracy 1 equals its confidence 1.
    assert expected_calibration_error([1, 1], [1.0, 1.0], n_bins=10) == pytest.approx(0.0)


def test_ece_single_bin_is_mean_gap() -> None:
    # One bin: |mean(y) - mean(p)| = |2/4 - (0.1 + 0.2 + 0.3 + 0.4) / 4| = |0.5 - 0.25|.
    ece = expected_calibration_error([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], n_bins=1)
    assert ece == pytest.approx(0.25)


def test_ece_confident_wrong_is_one() -> None:
    assert expected_calibration_error([0, 1], [1.0, 0.0]) == pytest.approx(1.0)


def test_multiclass_ece_four_samples_two_bins() -> None:
    # Top-class confidence 0.7, 0.6, 0.4, 0.4 with correct 1, 0, 1, 0.
    # Bin [0, 0.5): 0.4, 0.4 -> |1/2 - 0.4| = 0.1, weight 1/2, adds 0.05.
    # Bin [0.5, 1]: 0.7, 0.6 -> |1/2 - 0.65| = 0.15, weight 1/2, adds 0.075.
    ece = multiclass_ece(THREE_CLASS_TRUE, THREE_CLASS_PROBABILITIES, n_bins=2)
    assert ece == pytest.approx(0.125)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=1.0)),
        min_size=1,
        max_size=200,
    ),
    st.integers(min_value=1, max_value=30),
)
def test_ece_within_unit_interval(samples: list[tuple[bool, float]], n_bins: int) -> None:
    labels = [label for label, _ in samples]
    probabilities = [probability for _, probability in samples]
    ece = expected_calibration_error(labels, probabilities, n_bins=n_bins)
    assert 0.0 <= ece <= 1.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=3, max_size=3),
        min_size=1,
        max_size=50,
    ),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_multiclass_ece_within_unit_interval(weights: list[list[float]], seed: int) -> None:
    matrix = np.asarray(weights)
    probabilities = matrix / matrix.sum(axis=1, keepdims=True)
    true_index = np.random.default_rng(seed).integers(0, 3, size=len(weights))
    ece = multiclass_ece(true_index, probabilities)
    assert 0.0 <= ece <= 1.0


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ece_calibrated_predictor_near_zero(seed: int) -> None:
    # y ~ Bernoulli(p) is calibrated by construction. With 20,000 samples over 15 bins each bin
    # mean of y deviates from its mean p by about 0.01, so 0.03 leaves a wide margin.
    rng = np.random.default_rng(seed)
    probabilities = rng.uniform(0.0, 1.0, size=20_000)
    labels = rng.uniform(0.0, 1.0, size=20_000) < probabilities
    assert expected_calibration_error(labels, probabilities) < 0.03


# ---------------------------------------------------------------------------------------------
# multiclass_metrics


@pytest.fixture
def three_class_metrics() -> dict[str, float]:
    return multiclass_metrics(THREE_CLASS_TRUE, THREE_CLASS_PROBABILITIES, SENTIMENT_NAMES)


def test_multiclass_metrics_accuracy(three_class_metrics: dict[str, float]) -> None:
    # Predicted 0, 1, 0, 2 against true 0, 2, 0, 1: rows 1 and 3 right, 2 of 4.
    assert three_class_metrics["accuracy"] == pytest.approx(0.5)


def test_multiclass_metrics_per_class_f1(three_class_metrics: dict[str, float]) -> None:
    # negative: TP 2, FP 0, FN 0 -> 1. neutral: TP 0, FP 1, FN 1 -> 0. positive: the same -> 0.
    assert three_class_metrics["f1_negative"] == pytest.approx(1.0)
    assert three_class_metrics["f1_neutral"] == pytest.approx(0.0)
    assert three_class_metrics["f1_positive"] == pytest.approx(0.0)


def test_multiclass_metrics_macro_scores(three_class_metrics: dict[str, float]) -> None:
    assert three_class_metrics["macro_f1"] == pytest.approx(1 / 3)  # (1 + 0 + 0) / 3
    assert three_class_metrics["macro_recall"] == pytest.approx(1 / 3)  # (2/2 + 0/1 + 0/1) / 3


def test_multiclass_metrics_auc(three_class_metrics: dict[str, float]) -> None:
    # negative: positives 0.7, 0.4 beat negatives 0.1, 0.3 in all 4 pairs -> 1.
    # neutral: positive 0.3 beats 0.2 but not 0.6, 0.35 -> 1/3.
    # positive: positive 0.3 beats 0.1, 0.25 but not 0.4 -> 2/3. Mean (1 + 1/3 + 2/3) / 3.
    assert three_class_metrics["roc_auc_ovr_macro"] == pytest.approx(2 / 3)


def test_multiclass_metrics_auc_matches_sklearn(three_class_metrics: dict[str, float]) -> None:
    expected = roc_auc_score(THREE_CLASS_TRUE, THREE_CLASS_PROBABILITIES, multi_class="ovr")
    assert three_class_metrics["roc_auc_ovr_macro"] == pytest.approx(expected)


def test_multiclass_metrics_brier(three_class_metrics: dict[str, float]) -> None:
    # Row sums of (p - one_hot)^2: 0.09+0.04+0.01 = 0.14, 0.01+0.36+0.49 = 0.86,
    # 0.36+0.1225+0.0625 = 0.545, 0.09+0.49+0.16 = 0.74; mean 2.285 / 4 = 0.57125.
    assert three_class_metrics["brier"] == pytest.approx(0.57125)


def test_multiclass_metrics_ece(three_class_metrics: dict[str, float]) -> None:
    # 15 bins: 0.7 alone (correct), 0.6 alone (wrong), 0.4 and 0.4 together (one correct):
    # (|1 - 0.7| + |0 - 0.6| + 2 * |1/2 - 0.4|) / 4 = (0.3 + 0.6 + 0.2) / 4 = 0.275.
    assert three_class_metrics["ece"] == pytest.approx(0.275)


def test_multiclass_metrics_count(three_class_metrics: dict[str, float]) -> None:
    assert three_class_metrics["n"] == 4


def test_multiclass_metrics_absent_class_skipped_in_auc(caplog: pytest.LogCaptureFixture) -> None:
    # Class "c" never occurs, so the mean covers a and b only.
    # a: positives 0.7, 0.1 against negatives 0.4, 0.3 -> pairs won 2 of 4 = 1/2.
    # b: positives 0.35, 0.3 against negatives 0.2, 0.6 -> pairs won 2 of 4 = 1/2.
    with caplog.at_level(logging.WARNING, logger="pipelines.evaluate.metrics"):
        metrics = multiclass_metrics([0, 0, 1, 1], THREE_CLASS_PROBABILITIES, ["a", "b", "c"])
    assert metrics["roc_auc_ovr_macro"] == pytest.approx(0.5)
    assert "averages 2 of 3 classes" in caplog.text


def test_multiclass_metrics_class_never_seen_f1_nan() -> None:
    # Class "c" is neither true nor predicted (argmax 0, 1, 0 against true 0, 1, 0), so its F1
    # is undefined and the macro mean covers a (TP 2 -> 1) and b (TP 1 -> 1) only.
    probabilities = THREE_CLASS_PROBABILITIES[:3]
    metrics = multiclass_metrics([0, 1, 0], probabilities, ["a", "b", "c"])
    assert math.isnan(metrics["f1_c"])
    assert metrics["f1_b"] == pytest.approx(1.0)
    assert metrics["macro_f1"] == pytest.approx(1.0)  # (1 + 1) / 2, c left out


# ---------------------------------------------------------------------------------------------
# choose_threshold_f1


def test_choose_threshold_f1_picks_maximum() -> None:
    # Thresholds 0.1, 0.4, 0.8, 0.9 give (precision, recall) (3/5, 1), (3/4, 1), (1, 2/3),
    # (1, 1/3), so F1 0.75, 6/7 = 0.857, 0.8, 0.5: 0.4 wins.
    threshold = choose_threshold_f1([0, 1, 0, 1, 1], [0.1, 0.4, 0.4, 0.8, 0.9])
    assert threshold == pytest.approx(0.4)


def test_choose_threshold_f1_tie_takes_higher() -> None:
    # Sorted: 0.9 positive, 0.6 negative, 0.5 negative, 0.3 positive.
    # 0.9: TP 1, FP 0, FN 1 -> 2/3. 0.6: 2/4. 0.5: 2/5. 0.3: TP 2, FP 2, FN 0 -> 4/6 = 2/3.
    threshold = choose_threshold_f1([1, 0, 0, 1], [0.9, 0.6, 0.5, 0.3])
    assert threshold == pytest.approx(0.9)


def test_choose_threshold_f1_separable_data() -> None:
    # Every threshold in (0.3, 0.7] separates the classes; F1 = 1 only at 0.7 among candidates.
    assert choose_threshold_f1([0, 0, 1, 1], [0.2, 0.3, 0.7, 0.8]) == pytest.approx(0.7)


def test_choose_threshold_f1_no_positive_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pipelines.evaluate.metrics"):
        threshold = choose_threshold_f1([0, 0, 0], [0.1, 0.7, 0.9])
    assert threshold == FALLBACK_THRESHOLD
    assert "no positive sample" in caplog.text


# ---------------------------------------------------------------------------------------------
# threshold_for_recall


@pytest.mark.parametrize(
    ("recall", "expected"),
    [
        (0.5, 0.7),  # needs 2 of 4 positives: the 2nd highest positive score
        (0.6, 0.4),  # 2/4 = 0.5 < 0.6, so 3 of 4: the 3rd highest
        (0.75, 0.4),  # exactly 3/4
        (1.0, 0.2),  # all 4
    ],
)
def test_threshold_for_recall_targets(recall: float, expected: float) -> None:
    # Positives score 0.9, 0.7, 0.4, 0.2; the negative's 0.8 must not matter.
    threshold = threshold_for_recall([1, 1, 1, 1, 0], [0.9, 0.7, 0.4, 0.2, 0.8], recall)
    assert threshold == pytest.approx(expected)


def test_threshold_for_recall_decimal_target() -> None:
    # 0.7 * 10 is 7.000000000000001 in floating point; 7 of 10 positives must still suffice.
    scores = np.arange(10, 0, -1) / 10  # 1.0, 0.9, ..., 0.1
    assert threshold_for_recall([1] * 10, scores, 0.7) == pytest.approx(0.4)


def test_threshold_for_recall_tied_scores() -> None:
    # Positives 0.9, 0.5, 0.5: at 0.5 recall is 3/3 >= 2/3, above 0.5 only 1/3.
    assert threshold_for_recall([1, 1, 1], [0.5, 0.5, 0.9], 2 / 3) == pytest.approx(0.5)


def test_threshold_for_recall_no_positive_rejected() -> None:
    with pytest.raises(ValueError, match="no positive sample"):
        threshold_for_recall([0, 0], [0.2, 0.4], 0.5)


@pytest.mark.parametrize("recall", [0.0, -0.1, 1.5])
def test_threshold_for_recall_bad_target_rejected(recall: float) -> None:
    with pytest.raises(ValueError, match="recall"):
        threshold_for_recall([1, 0], [0.6, 0.4], recall)


# ---------------------------------------------------------------------------------------------
# lead_times


def test_lead_times_alert_two_turns_early() -> None:
    # First dissatisfied turn k = 3, first alert j = 1: lead 3 - 1.
    report = lead_times([([0.1, 0.8, 0.3, 0.2], [False, False, False, True])], threshold=0.5)
    assert report.caught == 1
    assert report.histogram == {2: 1}


def test_lead_times_alert_on_turn() -> None:
    # k = 2 and j = 2: lead 0.
    report = lead_times([([0.1, 0.2, 0.9], [False, False, True])], threshold=0.5)
    assert report.caught == 1
    assert report.histogram == {0: 1}


def test_lead_times_alert_only_after_is_miss() -> None:
    # k = 1, the only alert is at turn 2 > k.
    report = lead_times([([0.1, 0.2, 0.9], [False, True, True])], threshold=0.5)
    assert report.missed == 1
    assert report.caught == 0
    assert math.isnan(report.mean_lead_turns)


def test_lead_times_false_alarm() -> None:
    report = lead_times([([0.6, 0.1], [False, False])], threshold=0.5)
    assert report.n_conversations == 0
    assert report.false_alarm_conversations == 1
    assert report.false_alarm_rate == pytest.approx(1.0)
    assert math.isnan(report.catch_rate)


def test_lead_times_first_alert_counts() -> None:
    # Alerts at turns 0 and 2 before k = 3: the lead is measured from turn 0, so 3.
    report = lead_times([([0.9, 0.1, 0.9, 0.1], [False, False, False, True])], threshold=0.5)
    assert report.histogram == {3: 1}


def test_lead_times_first_dissatisfied_turn_counts() -> None:
    # Dissatisfied at turns 1 and 3, alert at turn 2: k is 1, so the alert is late.
    report = lead_times([([0.1, 0.2, 0.9, 0.1], [False, True, False, True])], threshold=0.5)
    assert report.missed == 1


def test_lead_times_probability_equal_threshold_alerts() -> None:
    report = lead_times([([0.5, 0.1], [False, True])], threshold=0.5)
    assert report.histogram == {1: 1}


def test_lead_times_mixed_report() -> None:
    conversations = [
        ([0.1, 0.8, 0.3, 0.2], [False, False, False, True]),  # caught, lead 2
        ([0.1, 0.2, 0.9], [False, False, True]),  # caught, lead 0
        ([0.1, 0.2, 0.9], [False, True, True]),  # missed
        ([0.6, 0.1], [False, False]),  # false alarm
        ([0.1, 0.1], [False, False]),  # quiet and satisfied
    ]
    report = lead_times(conversations, threshold=0.5)
    assert report.n_conversations == 3
    assert report.caught == 2
    assert report.missed == 1
    assert report.catch_rate == pytest.approx(2 / 3)
    assert report.mean_lead_turns == pytest.approx(1.0)  # (2 + 0) / 2
    assert report.median_lead_turns == pytest.approx(1.0)  # median of {0, 2}
    assert report.histogram == {0: 1, 2: 1}
    assert report.n_without_dissatisfaction == 2
    assert report.false_alarm_conversations == 1
    assert report.false_alarm_rate == pytest.approx(0.5)  # 1 of 2 satisfied conversations


def test_lead_times_histogram_sorted_by_lead() -> None:
    conversations = [
        ([0.9, 0.1, 0.1], [False, False, True]),  # lead 2
        ([0.9], [True]),  # lead 0
        ([0.9, 0.1], [False, True]),  # lead 1
        ([0.1, 0.9], [False, True]),  # lead 0
    ]
    report = lead_times(conversations, threshold=0.5)
    assert list(report.histogram.items()) == [(0, 2), (1, 1), (2, 1)]
    assert report.median_lead_turns == pytest.approx(0.5)  # median of {0, 0, 1, 2}


def test_lead_times_empty_conversation_list_rejected() -> None:
    with pytest.raises(ValueError, match="conversations is empty"):
        lead_times([], threshold=0.5)


def test_lead_times_conversation_without_turns() -> None:
    report = lead_times([([], [])], threshold=0.5)
    assert report.n_conversations == 0
    assert report.n_without_dissatisfaction == 1
    assert report.false_alarm_conversations == 0


def test_lead_times_to_dict() -> None:
    report = lead_times([([0.9, 0.1], [False, True])], threshold=0.5)
    as_dict = report.to_dict()
    assert as_dict["histogram"] == {1: 1}
    assert as_dict["catch_rate"] == pytest.approx(1.0)
    assert set(as_dict) == set(LeadTimeReport.__dataclass_fields__)


def test_lead_times_to_dict_copies_histogram() -> None:
    report = lead_times([([0.9, 0.1], [False, True])], threshold=0.5)
    report.to_dict()["histogram"][5] = 1
    assert report.histogram == {1: 1}


def test_lead_times_report_frozen() -> None:
    report = lead_times([([0.9, 0.1], [False, True])], threshold=0.5)
    with pytest.raises(AttributeError):
        report.caught = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        (([0.1, 0.2], [False]), r"conversations\[0\] probabilities has 2 samples"),
        (([0.1, 1.2], [False, True]), r"conversations\[0\] probabilities\[1\] = 1.2"),
        (([0.1, 0.2], [False, 2]), r"conversations\[0\] dissatisfied\[1\] = 2.0"),
        (([0.1],), r"conversations\[0\] has 1 items"),
        ("text", r"conversations\[0\] is a str"),
    ],
)
def test_lead_times_invalid_conversation_rejected(conversation: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lead_times([conversation], threshold=0.5)  # type: ignore[list-item]


def test_lead_times_bad_threshold_rejected() -> None:
    with pytest.raises(ValueError, match=r"threshold = 1.5 is outside \[0, 1\]"):
        lead_times([([0.1], [False])], threshold=1.5)


# ---------------------------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize(
    ("y_true", "probability", "message"),
    [
        ([0, 1, 1], [0.2, 0.4], "y_true has 3 samples but probability has 2"),
        ([0, 1], [0.2, 1.5], r"probability\[1\] = 1.5 is outside \[0, 1\]"),
        ([0, 1], [-0.1, 0.5], r"probability\[0\] = -0.1 is outside \[0, 1\]"),
        ([0, 1], [0.2, float("nan")], r"probability\[1\] = nan is outside \[0, 1\]"),
        ([0, 2], [0.2, 0.4], r"y_true\[1\] = 2.0 is not a binary label"),
        ([], [], "y_true is empty"),
        ([[0, 1]], [[0.2, 0.4]], r"y_true has shape \(1, 2\)"),
        (["no", "yes"], [0.2, 0.4], "y_true is not numeric"),
    ],
)
def test_binary_inputs_rejected(y_true: object, probability: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_metrics(y_true, probability, threshold=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(y_true, probability)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        choose_threshold_f1(y_true, probability)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        threshold_for_recall(y_true, probability, 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [-0.01, 1.01, float("nan")])
def test_binary_metrics_bad_threshold_rejected(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics([0, 1], [0.2, 0.8], threshold=threshold)


@pytest.mark.parametrize("n_bins", [0, -3, 2.5, True])
def test_ece_bad_n_bins_rejected(n_bins: object) -> None:
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=n_bins)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("y_true_index", "probabilities", "message"),
    [
        ([0, 3], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], r"y_true_index\[1\] = 3.0 is not a class"),
        ([0, 1.5], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], r"y_true_index\[1\] = 1.5"),
        ([0, 1], [[0.5, 0.6, 0.0], [0.2, 0.3, 0.5]], r"probabilities\[0\] sums to 1.1"),
        ([0, 1], [[0.5, 0.5, 0.0], [1.2, -0.2, 0.0]], r"probabilities\[1, 0\] = 1.2"),
        ([0, 1, 2], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], "y_true_index has 3 samples"),
        ([0], [0.5, 0.5], r"probabilities has shape \(2,\)"),
        ([0], [[1.0]], r"probabilities has shape \(1, 1\)"),
        ([], np.empty((0, 3)), "probabilities is empty"),
    ],
)
def test_multiclass_inputs_rejected(
    y_true_index: object, probabilities: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        multiclass_metrics(y_true_index, probabilities, SENTIMENT_NAMES)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        multiclass_ece(y_true_index, probabilities)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("class_names", "message"),
    [
        (["negative", "neutral"], "class_names has 2 names but probabilities has 3 columns"),
        (["a", "b", "a"], "class_names repeats a"),
        (["a", "", "c"], r"class_names\[1\] = '' is invalid"),
        ("abc", "class_names = 'abc' is not a sequence of names"),
    ],
)
def test_multiclass_bad_class_names_rejected(class_names: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        multiclass_metrics(
            THREE_CLASS_TRUE, THREE_CLASS_PROBABILITIES, class_names  # type: ignore[arg-type]
        )
