"""Evaluate a bundle on labelled data, every model beside its baseline, through the serving path."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipelines.evaluate.metrics import binary_metrics, lead_times, multiclass_metrics
from pipelines.evaluate.vader import VaderBaseline
from pipelines.train.labels import (
    SENTIMENT_INDEX,
    dissatisfied_flags,
    escalation_labels,
)
from serving.schema import SENTIMENT_CLASSES, Conversation, Role
from serving.scorer import ConversationScore, Scorer
from serving.tiers import Tier

logger = logging.getLogger(__name__)

SENTIMENT_NAMES = [label.value for label in SENTIMENT_CLASSES]
# VADER's own rule calls a text negative at compound <= -0.05; its frustration score is
# max(0, -compound), so the same cut-off applies.
VADER_FRUSTRATION_THRESHOLD = 0.05
# The rule baseline scores a turn by the most urgent tier fired so far, scaled to [0, 1], and
# alerts at any tier, as a rules-only deployment would.
RULE_ALERT_THRESHOLD = Tier.SCHEDULED.severity / Tier.IMMEDIATE.severity


def evaluate_messages(
    conversations: Sequence[Conversation],
    scorer: Scorer,
    vader: VaderBaseline,
) -> dict[str, Any]:
    """Sentiment and frustration of labelled customer messages: the heads beside VADER."""
    texts, sentiment, frustration = _labelled_messages(conversations)
    if not texts:
        return {}

    signals = scorer.message_signals(texts)
    model_sentiment = np.vstack([signal.sentiment for signal in signals])
    model_frustration = np.asarray([signal.frustration for signal in signals])
    vader_sentiment = vader.sentiment_proba(texts)
    vader_frustration = vader.frustration_score(texts)
    threshold = scorer.manifest.thresholds.frustration

    results: dict[str, Any] = {
        "sentiment": {
            "model": multiclass_metrics(sentiment, model_sentiment, SENTIMENT_NAMES),
            "vader": multiclass_metrics(sentiment, vader_sentiment, SENTIMENT_NAMES),
        },
    }
    if frustration is not None:
        results["frustration"] = {
            "model": {**binary_metrics(frustration, model_frustration, threshold),
                      "threshold": threshold},
            "vader": {**binary_metrics(frustration, vader_frustration,
                                       VADER_FRUSTRATION_THRESHOLD),
                      "threshold": VADER_FRUSTRATION_THRESHOLD},
        }
    return results


def evaluate_escalation(
    conversations: Sequence[Conversation],
    scorer: Scorer,
    *,
    horizon: int,
    dissatisfied_rating: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Escalation probability per customer turn against satisfaction ratings, beside the rules.

    Only conversations whose customer turns carry satisfaction ratings are used.
    """
    rated = [conversation for conversation in conversations if _has_ratings(conversation)]
    if not rated:
        return {}

    labels: list[int] = []
    model_scores: list[float] = []
    rule_scores: list[float] = []
    model_sequences: list[tuple[list[float], list[bool]]] = []
    rule_sequences: list[tuple[list[float], list[bool]]] = []
    for conversation in rated:
        score = scorer.score(conversation)
        flags = dissatisfied_flags(conversation, dissatisfied_rating)
        probabilities = [turn.escalation_probability for turn in score.turns]
        rules = _rule_baseline_scores(score)

        labels.extend(escalation_labels(conversation, horizon=horizon,
                                        dissatisfied_rating=dissatisfied_rating))
        model_scores.extend(probabilities)
        rule_scores.extend(rules)
        model_sequences.append((probabilities, flags))
        rule_sequences.append((rules, flags))
        if progress is not None:
            progress(1)

    threshold = scorer.thresholds.escalation
    prepare = scorer.thresholds.prepare
    y_true = np.asarray(labels)
    return {
        "model": {
            **binary_metrics(y_true, np.asarray(model_scores), threshold),
            "threshold": threshold,
            "lead_time": lead_times(model_sequences, threshold).to_dict(),
        },
        # The same probabilities at the lower "prepare an agent" threshold: the early warning.
        "model_prepare": {
            **binary_metrics(y_true, np.asarray(model_scores), prepare),
            "threshold": prepare,
            "lead_time": lead_times(model_sequences, prepare).to_dict(),
        },
        "rules": {
            **binary_metrics(y_true, np.asarray(rule_scores), RULE_ALERT_THRESHOLD),
            "threshold": RULE_ALERT_THRESHOLD,
            "lead_time": lead_times(rule_sequences, RULE_ALERT_THRESHOLD).to_dict(),
        },
        "n_conversations": len(rated),
    }


def _rule_baseline_scores(score: ConversationScore) -> list[float]:
    values = []
    for turn in score.turns:
        tiers = [reason.tier for reason in turn.decision.reasons if reason.source == "rule"]
        severity = max((tier.severity for tier in tiers), default=0)
        values.append(severity / Tier.IMMEDIATE.severity)
    return values


def _has_ratings(conversation: Conversation) -> bool:
    return any(
        turn.role is Role.CUSTOMER and turn.labels is not None
        and turn.labels.satisfaction is not None
        for turn in conversation.turns
    )


def _labelled_messages(
    conversations: Sequence[Conversation],
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    texts: list[str] = []
    sentiment: list[int] = []
    frustration: list[int] = []
    frustration_complete = True
    for conversation in conversations:
        for turn in conversation.turns:
            labels = turn.labels
            if turn.role is not Role.CUSTOMER or labels is None or labels.sentiment is None:
                continue
            texts.append(turn.text)
            sentiment.append(SENTIMENT_INDEX[labels.sentiment])
            frustration.append(int(bool(labels.frustration)))
            frustration_complete = frustration_complete and labels.frustration is not None
    frustration_array = np.asarray(frustration) if frustration_complete else None
    return texts, np.asarray(sentiment), frustration_array
