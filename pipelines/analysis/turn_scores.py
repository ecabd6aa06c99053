"""Every customer turn of labelled conversations scored by a bundle, as one table row each.

A row carries the turn's place in the dialogue, its satisfaction label and escalation label,
the model's signals and probability, and the serving decision at that turn with its reasons.
Error analysis and threshold sweeps therefore work from what the service would have decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipelines.analysis.corpus_tables import position_bucket, relative_position, shorten
from pipelines.train.labels import customer_ratings, escalation_labels
from serving.bundle import Manifest
from serving.decision import Decision, DecisionReason
from serving.schema import Conversation
from serving.scorer import ConversationScore, Scorer, TurnScore

logger = logging.getLogger(__name__)

# Maximum characters of a rule evidence value in the one-line summary of a decision.
MAX_VALUE_CHARS = 40

TURN_SCORE_COLUMNS = [
    "conversation_id", "source", "turn_index", "customer_turn_number", "n_customer_turns",
    "relative_position", "position", "text", "satisfaction", "dissatisfied", "label",
    "probability", "threshold", "prepare_threshold", "model_alert", "rule_alert", "escalate",
    "prepare_agent", "tier", "reason_category", "alert_source", "rules_at_turn", "reasons",
    "evidence", "sentiment_negative", "sentiment_neutral", "sentiment_positive", "frustration",
]


@dataclass(frozen=True)
class LabelSettings:
    """Label rule of the escalation head: the dissatisfied rating cut-off and the horizon."""

    horizon: int
    dissatisfied_rating: int


def label_settings(manifest: Manifest) -> LabelSettings:
    """Return the label settings the bundle was trained with, from its manifest parameters.

    Falls back to pipelines/config/train.yaml for a manifest without them, so the labels match
    what `escalation train` would use today.
    """
    escalation = manifest.parameters.get("escalation", {})
    if "horizon" in escalation and "dissatisfied_rating" in escalation:
        return LabelSettings(int(escalation["horizon"]), int(escalation["dissatisfied_rating"]))

    from pipelines.train.config import load_train_config

    config = load_train_config().escalation
    logger.info("bundle %s stores no label settings; using train.yaml (horizon %d, rating %d)",
                manifest.name, config.horizon, config.dissatisfied_rating)
    return LabelSettings(config.horizon, config.dissatisfied_rating)


def score_turns(
    conversations: Sequence[Conversation],
    scorer: Scorer,
    settings: LabelSettings,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Score every conversation with `scorer` and return one row per customer turn.

    Columns are TURN_SCORE_COLUMNS. `label` is 1 when this customer turn or one of the next
    `settings.horizon` is rated at or below `settings.dissatisfied_rating`, as in training.
    `alert_source` names what made the decision escalate: model, rule, model+rule or none.
    `progress`, when given, is called with (done, total) after each conversation.
    """
    logger.info("scoring %d conversations with bundle %s", len(conversations),
                scorer.manifest.name)
    rows: list[dict[str, Any]] = []
    for done, conversation in enumerate(conversations, start=1):
        rows.extend(conversation_rows(conversation, scorer.score(conversation), settings))
        if progress is not None:
            progress(done, len(conversations))
    logger.info("scored %d customer turns of %d conversations", len(rows), len(conversations))

    frame = pd.DataFrame(rows, columns=TURN_SCORE_COLUMNS)
    frame["satisfaction"] = frame["satisfaction"].astype("Int64")
    return frame


def conversation_rows(
    conversation: Conversation, score: ConversationScore, settings: LabelSettings
) -> list[dict[str, Any]]:
    """Return the rows of one scored conversation, one per customer turn, in order."""
    ratings = customer_ratings(conversation)
    labels = escalation_labels(conversation, horizon=settings.horizon,
                               dissatisfied_rating=settings.dissatisfied_rating)
    count = len(score.turns)
    rows = []
    for number, (turn, rating, label) in enumerate(zip(score.turns, ratings, labels,
                                                       strict=True)):
        position = relative_position(number, count)
        rows.append({
            "conversation_id": conversation.id,
            "source": conversation.source,
            "turn_index": turn.turn_index,
            "customer_turn_number": number,
            "n_customer_turns": count,
            "relative_position": position,
            "position": position_bucket(position),
            "text": conversation.turns[turn.turn_index].text,
            "satisfaction": rating,
            "dissatisfied": rating is not None and rating <= settings.dissatisfied_rating,
            "label": label,
            **_decision_columns(turn),
        })
    return rows


def _decision_columns(turn: TurnScore) -> dict[str, Any]:
    decision = turn.decision
    model_alert = any(reason.source == "model" for reason in decision.reasons)
    rule_alert = any(reason.source == "rule" for reason in decision.reasons)
    return {
        "probability": turn.escalation_probability,
        "threshold": decision.thresholds.escalation,
        "prepare_threshold": decision.thresholds.prepare,
        "model_alert": model_alert,
        "rule_alert": rule_alert,
        "escalate": decision.escalate,
        "prepare_agent": decision.prepare_agent,
        "tier": decision.tier.value,
        "reason_category": decision.reason_category.value if decision.reason_category else None,
        "alert_source": alert_source(model_alert, rule_alert),
        "rules_at_turn": tuple(match.rule for match in turn.matches),
        "reasons": tuple(reason.to_dict() for reason in decision.reasons),
        "evidence": decision_evidence(decision),
        "sentiment_negative": turn.sentiment["negative"],
        "sentiment_neutral": turn.sentiment["neutral"],
        "sentiment_positive": turn.sentiment["positive"],
        "frustration": turn.frustration,
    }


def alert_source(model_alert: bool, rule_alert: bool) -> str:
    """Name what raised an alert: `model`, `rule`, `model+rule` or `none`."""
    if model_alert and rule_alert:
        return "model+rule"
    if model_alert:
        return "model"
    if rule_alert:
        return "rule"
    return "none"


def decision_evidence(decision: Decision) -> str:
    """Summarise a decision's reasons on one line: each rule with its evidence, then the model.

    Without any reason the line gives the probability beside both thresholds, which is the
    evidence for a miss.
    """
    if not decision.reasons:
        return (f"probability {decision.probability:.3f} < escalation threshold "
                f"{decision.thresholds.escalation:.3f} (prepare "
                f"{decision.thresholds.prepare:.3f})")
    return "; ".join(_reason_evidence(reason) for reason in decision.reasons)


def _reason_evidence(reason: DecisionReason) -> str:
    if reason.source == "model":
        return (f"model {reason.evidence['probability']:.3f} >= "
                f"{reason.evidence['threshold']:.3f} [{reason.tier.value}]")

    # Keyword rules store their whole phrase pattern; the matched text is the evidence, so
    # long values are cut to keep the line readable.
    details = [f"{key}={shorten(str(value), MAX_VALUE_CHARS)}"
               for key, value in reason.evidence.items() if key not in ("matched_text", "span")]
    if "matched_text" in reason.evidence:
        details.insert(0, repr(reason.evidence["matched_text"]))
    suffix = f" ({', '.join(details)})" if details else ""
    return (f"rule {reason.code} at conversation turn {reason.turn_index}{suffix} "
            f"[{reason.tier.value}]")
