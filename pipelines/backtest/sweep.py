"""Conversation-level escalation rate, precision and recall at every threshold, from one replay.

Before its first handoff a conversation has no hand-back, so nothing is suppressed. It first
escalates at the first turn where a rule has fired so far or the latest probability reaches
the threshold. It therefore escalates at threshold t exactly when a rule fired at some turn
or its peak probability is >= t. The recorded probabilities and rule tiers are enough, and
no message is scored again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.backtest.gold import GoldOutcome
from pipelines.backtest.replay import ConversationReplay
from serving.tiers import Tier


@dataclass(frozen=True)
class ThresholdCurve:
    """Conversation-level figures at each candidate escalation threshold, in increasing order.

    `rate` is over all conversations, `precision` and `recall` over the labelled ones, with
    nan where undefined (no escalation, or no conversation that needed a human).
    """

    thresholds: np.ndarray
    rate: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    conversations: int
    labelled: int
    positives: int


def threshold_curve(replays: Sequence[ConversationReplay],
                    golds: Sequence[GoldOutcome | None]) -> ThresholdCurve:
    """Sweep every threshold at which some conversation's decision changes, plus 1.0."""
    if len(replays) != len(golds):
        raise ValueError(f"{len(golds)} gold outcomes for {len(replays)} replays; pass one "
                         "outcome (or None) per replayed conversation")
    by_rules = np.array([any(turn.rule_tier is not Tier.NONE for turn in replay.turns)
                         for replay in replays], dtype=bool)
    peaks = np.array([max(turn.probability for turn in replay.turns) for replay in replays],
                     dtype=np.float64)
    labelled = np.array([gold is not None for gold in golds], dtype=bool)
    positive = np.array([gold is not None and gold.escalated for gold in golds], dtype=bool)

    # Conversations a rule escalates do so at every threshold, so only the others' peaks
    # are places where a figure can change.
    thresholds = np.unique(np.append(peaks[~by_rules], 1.0))
    escalated = _count_escalated(by_rules, peaks, thresholds, np.ones(len(replays), bool))
    true_positives = _count_escalated(by_rules, peaks, thresholds, positive)
    predicted = _count_escalated(by_rules, peaks, thresholds, labelled)

    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, np.nan)
        recall = np.full(len(thresholds), np.nan) if not positive.any() else \
            true_positives / positive.sum()
    return ThresholdCurve(
        thresholds=thresholds,
        rate=escalated / len(replays) if len(replays) else np.full(len(thresholds), np.nan),
        precision=precision,
        recall=recall,
        conversations=len(replays),
        labelled=int(labelled.sum()),
        positives=int(positive.sum()),
    )


def _count_escalated(by_rules: np.ndarray, peaks: np.ndarray, thresholds: np.ndarray,
                     selected: np.ndarray) -> np.ndarray:
    """Count the selected conversations that escalate at each threshold (peak >= threshold)."""
    always = int((by_rules & selected).sum())
    model_peaks = np.sort(peaks[~by_rules & selected])
    below = np.searchsorted(model_peaks, thresholds, side="left")
    return always + (len(model_peaks) - below)
