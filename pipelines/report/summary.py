"""Metrics of the report's tables: models beside baselines, overall, per source, per reason."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipelines.evaluate.evaluation import (
    RULE_ALERT_THRESHOLD,
    SENTIMENT_NAMES,
    VADER_FRUSTRATION_THRESHOLD,
)
from pipelines.evaluate.metrics import binary_metrics, lead_times, multiclass_metrics
from pipelines.report.data import ConversationRows, MessageRows

# Group name of alerts whose decision carries no reason category.
NO_REASON = "(none)"

ScoreOf = Callable[[ConversationRows], np.ndarray]

# The escalation systems compared per conversation: the head alone, the rules alone, and the
# served decision, which escalates when either does. The decision is already a yes/no per turn,
# so it is scored as 1.0 or 0.0 against a threshold of 1.
SYSTEMS: dict[str, ScoreOf] = {
    "model": lambda rows: rows.model,
    "rules": lambda rows: rows.rules,
    "decision": lambda rows: rows.escalate.astype(float),
}


def message_metrics(
    messages: MessageRows, frustration_threshold: float
) -> dict[str, Any]:
    """Sentiment and frustration of the heads beside VADER, keyed as `escalation evaluate`."""
    results: dict[str, Any] = {
        "sentiment": {
            "model": multiclass_metrics(messages.sentiment, messages.model_sentiment,
                                        SENTIMENT_NAMES),
            "vader": multiclass_metrics(messages.sentiment, messages.vader_sentiment,
                                        SENTIMENT_NAMES),
        },
    }
    if messages.frustration is not None:
        results["frustration"] = {
            "model": {**binary_metrics(messages.frustration, messages.model_frustration,
                                       frustration_threshold),
                      "threshold": frustration_threshold},
            "vader": {**binary_metrics(messages.frustration, messages.vader_frustration,
                                       VADER_FRUSTRATION_THRESHOLD),
                      "threshold": VADER_FRUSTRATION_THRESHOLD},
        }
    return results


def escalation_metrics(
    conversations: Sequence[ConversationRows], escalation: float, prepare: float
) -> dict[str, Any]:
    """Per-turn escalation metrics and lead times, keyed as `escalation evaluate` keys them."""
    labels = pooled(conversations, lambda rows: rows.labels)
    model = pooled(conversations, lambda rows: rows.model)
    rules = pooled(conversations, lambda rows: rows.rules)
    return {
        "model": _binary_with_lead(conversations, labels, model, lambda rows: rows.model,
                                   escalation),
        "model_prepare": _binary_with_lead(conversations, labels, model,
                                           lambda rows: rows.model, prepare),
        "rules": _binary_with_lead(conversations, labels, rules, lambda rows: rows.rules,
                                   RULE_ALERT_THRESHOLD),
        "n_conversations": len(conversations),
    }


def _binary_with_lead(
    conversations: Sequence[ConversationRows],
    labels: np.ndarray,
    scores: np.ndarray,
    score_of: ScoreOf,
    threshold: float,
) -> dict[str, Any]:
    return {
        **binary_metrics(labels, scores, threshold),
        "threshold": threshold,
        "lead_time": lead_times(sequences(conversations, score_of), threshold).to_dict(),
    }


def pooled(conversations: Sequence[ConversationRows], values_of: ScoreOf) -> np.ndarray:
    """Concatenate one per-turn array of every conversation."""
    if not conversations:
        return np.zeros(0)
    return np.concatenate([values_of(rows) for rows in conversations])


def sequences(
    conversations: Sequence[ConversationRows], score_of: ScoreOf
) -> list[tuple[Sequence[float], Sequence[bool]]]:
    """Return the (scores, dissatisfied) pairs that `lead_times` takes."""
    return [(score_of(rows).tolist(), rows.dissatisfied.tolist()) for rows in conversations]


def conversation_alert_rate(
    conversations: Sequence[ConversationRows], score_of: ScoreOf, threshold: float
) -> float:
    """Share of conversations with at least one customer turn at or above the threshold."""
    if not conversations:
        return float("nan")
    return float(np.mean([bool(np.any(score_of(rows) >= threshold)) for rows in conversations]))


def messages_by_source(messages: MessageRows, frustration_threshold: float) -> list[dict[str, Any]]:
    """Sentiment and frustration metrics of the heads and VADER per data source."""
    groups: dict[str, list[int]] = defaultdict(list)
    for position, source in enumerate(messages.sources):
        groups[source].append(position)

    table = []
    for source in sorted(groups):
        rows = np.asarray(groups[source])
        subset = MessageRows(
            sources=[source] * rows.size,
            sentiment=messages.sentiment[rows],
            frustration=None if messages.frustration is None else messages.frustration[rows],
            model_sentiment=messages.model_sentiment[rows],
            vader_sentiment=messages.vader_sentiment[rows],
            model_frustration=messages.model_frustration[rows],
            vader_frustration=messages.vader_frustration[rows],
        )
        table.append({"group": source, "n": int(rows.size),
                      **message_metrics(subset, frustration_threshold)})
    return table


def escalation_by_group(
    conversations: Sequence[ConversationRows],
    group_of: Callable[[ConversationRows], str],
    escalation: float,
) -> list[dict[str, Any]]:
    """Escalation metrics of the head and the rules per group of conversations.

    Each row has the group's size and, per system, the per-turn ranking and threshold metrics
    and the per-conversation alert rate, catch rate, lead time and false-alarm rate.
    """
    groups: dict[str, list[ConversationRows]] = defaultdict(list)
    for rows in conversations:
        groups[group_of(rows)].append(rows)

    table = []
    for name in sorted(groups):
        members = groups[name]
        labels = pooled(members, lambda rows: rows.labels)
        table.append({
            "group": name,
            "n_conversations": len(members),
            "n_turns": int(labels.size),
            "positive_rate": float(labels.mean()),
            "model": _system_summary(members, labels, lambda rows: rows.model, escalation),
            "rules": _system_summary(members, labels, lambda rows: rows.rules,
                                     RULE_ALERT_THRESHOLD),
        })
    return table


def _system_summary(
    members: Sequence[ConversationRows], labels: np.ndarray, score_of: ScoreOf, threshold: float
) -> dict[str, float]:
    per_turn = binary_metrics(labels, pooled(members, score_of), threshold)
    lead = lead_times(sequences(members, score_of), threshold)
    return {
        "roc_auc": per_turn["roc_auc"],
        "pr_auc": per_turn["pr_auc"],
        "precision": per_turn["precision"],
        "recall": per_turn["recall"],
        "alert_rate_conversations": conversation_alert_rate(members, score_of, threshold),
        "catch_rate": lead.catch_rate,
        "mean_lead_turns": lead.mean_lead_turns,
        "false_alarm_rate": lead.false_alarm_rate,
    }


def alerts_by_reason(
    conversations: Sequence[ConversationRows], escalation: float
) -> list[dict[str, Any]]:
    """Group each system's first alert per conversation by the decision's reason category.

    The reason is the served decision's category at the turn of the first alert. An alert is
    in time when it comes at or before the first dissatisfied turn, as in `lead_times`.
    `precision` is the share of alerted conversations that reach dissatisfaction at all.
    """
    thresholds = {"model": escalation, "rules": RULE_ALERT_THRESHOLD, "decision": 1.0}
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for system, score_of in SYSTEMS.items():
        for rows in conversations:
            alerts = np.flatnonzero(score_of(rows) >= thresholds[system])
            if alerts.size == 0:
                continue
            first_alert = int(alerts[0])
            reason = rows.reason_categories[first_alert] or NO_REASON
            entry = counts.setdefault((system, reason),
                                      {"alerted": 0, "dissatisfied": 0, "leads": []})
            entry["alerted"] += 1
            if rows.dissatisfied.any():
                entry["dissatisfied"] += 1
                first_dissatisfied = int(np.argmax(rows.dissatisfied))
                if first_alert <= first_dissatisfied:
                    entry["leads"].append(first_dissatisfied - first_alert)

    table = []
    order = list(SYSTEMS)
    for (system, reason), entry in sorted(counts.items(),
                                          key=lambda item: (order.index(item[0][0]), item[0][1])):
        leads = entry["leads"]
        table.append({
            "system": system,
            "reason": reason,
            "alerted": entry["alerted"],
            "dissatisfied": entry["dissatisfied"],
            "in_time": len(leads),
            "precision": entry["dissatisfied"] / entry["alerted"],
            "mean_lead_turns": float(np.mean(leads)) if leads else float("nan"),
        })
    return table
