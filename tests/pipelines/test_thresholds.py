"""Tests of the conversation-level alert budget and recall target that pick the thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.train.run import budget_threshold, recall_threshold


def _alerting(probability: np.ndarray, ids: list[str], threshold: float) -> int:
    peaks: dict[str, float] = {}
    for conversation_id, value in zip(ids, probability, strict=True):
        peaks[conversation_id] = max(peaks.get(conversation_id, 0.0), float(value))
    return sum(1 for value in peaks.values() if value >= threshold)


def test_budget_of_half_alerts_two_of_four() -> None:
    probability = np.array([0.1, 0.9, 0.2, 0.5, 0.3, 0.05])
    ids = ["a", "a", "b", "b", "c", "d"]

    threshold = budget_threshold(probability, ids, 0.5)

    # Peaks are a=0.9, b=0.5, c=0.3, d=0.05: two may alert, so c's 0.3 must stay below.
    assert threshold > 0.3
    assert threshold <= 0.5
    assert _alerting(probability, ids, threshold) == 2


def test_full_budget_allows_everything() -> None:
    assert budget_threshold(np.array([0.2, 0.4]), ["a", "b"], 1.0) == 0.0


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2, 0.5])
def test_budget_respected_on_random_data(rate: float) -> None:
    generator = np.random.default_rng(3)
    ids = [f"c{index // 7}" for index in range(700)]
    probability = generator.random(700)

    threshold = budget_threshold(probability, ids, rate)

    assert _alerting(probability, ids, threshold) <= int(rate * 100)


def test_recall_counts_conversations_not_turns() -> None:
    # a and b needed a human (a positive turn each); c did not. a peaks at 0.9 on a negative
    # turn, which still counts: the warning fired in that conversation.
    probability = np.array([0.9, 0.2, 0.4, 0.1, 0.95])
    labels = np.array([0, 1, 1, 0, 0])
    ids = ["a", "a", "b", "b", "c"]

    assert recall_threshold(probability, labels, ids, 1.0) == pytest.approx(0.4)
    assert recall_threshold(probability, labels, ids, 0.5) == pytest.approx(0.9)


@pytest.mark.parametrize("recall", [0.3, 0.8, 0.95])
def test_recall_target_met_on_random_data(recall: float) -> None:
    generator = np.random.default_rng(5)
    ids = [f"c{index // 6}" for index in range(600)]
    probability = generator.random(600)
    labels = (generator.random(600) < 0.1).astype(int)
    positive = {conversation_id for conversation_id, label in zip(ids, labels, strict=True)
                if label}

    threshold = recall_threshold(probability, labels, ids, recall)

    caught = {conversation_id for conversation_id, value in zip(ids, probability, strict=True)
              if conversation_id in positive and value >= threshold}
    assert len(caught) >= recall * len(positive)
    higher = float(np.nextafter(threshold, 1.0))
    caught_higher = {conversation_id for conversation_id, value in zip(ids, probability,
                                                                       strict=True)
                     if conversation_id in positive and value >= higher}
    assert len(caught_higher) < recall * len(positive)


def test_recall_without_positives_names_the_labels() -> None:
    with pytest.raises(ValueError, match="no positive conversation"):
        recall_threshold(np.array([0.5]), np.array([0]), ["a"], 0.8)
