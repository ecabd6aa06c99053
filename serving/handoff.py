"""Handoff package: what a human agent needs to take over an escalated conversation.

`build_handoff_package` collects what one conversation looks like at the moment of the
handoff. That is the urgency and its causes, the customer profile with personal fields marked,
the customer's key sentences, entities such as error codes and order ids, and the steps the
assistant already suggested. It adds a recommended approach for the reason, the assistant's
confidence and the customer's sentiment over time, and the most similar resolved past
conversations. The package is a pydantic model whose JSON Schema is published at
`serving/schemas/handoff_package.schema.json` (regenerate it with `python -m serving.handoff`).
`render_text` turns a package into plain text for agent consoles that show no JSON.
"""

from __future__ import annotations

import json
import logging
import textwrap
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from serving.decision import Decision, DecisionReason
from serving.errors import HandoffConfigError
from serving.extract import Entity, SuggestedStep, extract_conversation_entities, suggested_steps
from serving.keypoints import DEFAULT_KEY_POINTS, KeyPoint, select_key_points
from serving.messages import read_policy_yaml
from serving.schema import Conversation, CustomerProfile, Role
from serving.scorer import TurnScore
from serving.similar import (
    DEFAULT_NEIGHBOURS,
    SimilarCase,
    SimilarCaseIndex,
    conversation_vector,
)
from serving.tiers import Reason, Tier

logger = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]

SCHEMA_VERSION: Final = "1.0"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "handoff_package.schema.json"
DEFAULT_APPROACHES_PATH = Path(__file__).resolve().parent / "policies" / "approaches.yaml"
SUPPORTED_APPROACHES_VERSION = 1

# Profile fields that identify a person. Plan, flags, region and counts describe the account.
PERSONAL_FIELDS: frozenset[str] = frozenset({"customer_id", "name", "email"})

# NOTE: a confidence slope within +-0.02 per answer counts as flat. The band is a judgement
# call, not fitted to data: it is 0.1 over five answers, about the gap between two policy
# thresholds (0.60 and 0.70).
FLAT_SLOPE = 0.02

SENTIMENT_KEYS: tuple[str, ...] = ("negative", "neutral", "positive")
TEXT_WIDTH = 78


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Package model
# ---------------------------------------------------------------------------------------------


class Urgency(_Model):
    """Deadline for an agent to join, and the model figures behind the decision."""

    tier: Tier
    sla_seconds: int | None = Field(description="Seconds within which an agent must join.")
    respond_by: datetime | None = Field(description="created_at plus the SLA, in UTC.")
    escalate: bool
    prepare_agent: bool = Field(description="True when no handoff is due yet but the model "
                                            "probability crossed the prepare threshold.")
    escalation_probability: float
    escalation_threshold: float
    prepare_threshold: float


class TriggerReason(_Model):
    """One cause of the decision, with the evidence an agent can check."""

    source: Literal["rule", "model"]
    code: str = Field(description="Rule id, or 'escalation_probability' for the model.")
    tier: Tier
    turn_index: int
    description: str
    evidence: dict[str, JsonValue]


class CustomerField(_Model):
    """One field of the customer profile; `personal` marks data that identifies a person."""

    name: str
    value: str | int | float | bool
    personal: bool


class ConversationInfo(_Model):
    """Channel, source, timing and size of the conversation."""

    channel: str | None
    source: str | None
    started_at: datetime | None
    last_message_at: datetime | None
    duration_seconds: float | None = Field(
        description="From started_at (or the first timestamp) to the last turn timestamp; "
                    "null with fewer than two timestamps.")
    turn_count: int
    customer_turn_count: int


class ConfidencePoint(_Model):
    """The assistant's confidence in one of its answers."""

    turn_index: int
    confidence: float


class ConfidenceTrend(_Model):
    """The assistant's confidence per answer and its least-squares trend."""

    answers: list[ConfidencePoint]
    first: float | None
    last: float | None
    minimum: float | None
    slope_per_answer: float | None = Field(
        description="Least-squares slope of confidence over answer number; null with fewer "
                    "than two answers.")
    direction: Literal["falling", "flat", "rising"] | None


class CustomerTurnSignal(_Model):
    """Model outputs at one customer turn: sentiment probabilities, frustration, escalation."""

    turn_index: int
    negative: float
    neutral: float
    positive: float
    frustration: float
    escalation_probability: float


class Approach(_Model):
    """A recommended way to handle one escalation reason."""

    summary: str = Field(min_length=1, max_length=400)
    checklist: list[str] = Field(min_length=1, max_length=6)


class RecommendedApproach(_Model):
    """The approach for the package's reason."""

    reason: Reason
    summary: str
    checklist: list[str]


class HandoffPackage(_Model):
    """Everything an agent needs to take over a conversation, most urgent first."""

    # Serialised packages always carry schema_version, so the schema lists it as required.
    model_config = ConfigDict(extra="forbid", frozen=True,
                              json_schema_serialization_defaults_required=True)

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    package_id: str
    conversation_id: str
    created_at: datetime
    bundle: str = Field(description="Name of the model bundle that scored the conversation.")
    urgency: Urgency
    reason: Reason | None = Field(
        description="Escalation reason category, from the caller or else from the decision; "
                    "null when neither sets one, as for a decision that does not escalate.")
    trigger: TriggerReason | None = Field(
        description="The first of `reasons`: the cause with the most urgent tier, and the "
                    "earliest of those.")
    reasons: list[TriggerReason]
    key_points: list[KeyPoint]
    entities: list[Entity]
    suggested_steps: list[SuggestedStep] = Field(
        description="Instructions the assistant already gave, so the agent does not repeat "
                    "them.")
    approach: RecommendedApproach
    customer: list[CustomerField]
    conversation: ConversationInfo
    assistant_confidence: ConfidenceTrend
    customer_signals: list[CustomerTurnSignal]
    similar_cases: list[SimilarCase]
    routing: dict[str, JsonValue] | None


# ---------------------------------------------------------------------------------------------
# Approaches
# ---------------------------------------------------------------------------------------------


def load_approaches(path: str | Path = DEFAULT_APPROACHES_PATH) -> dict[Reason, Approach]:
    """Read and validate the approaches YAML: one entry for every Reason, no other keys."""
    source = f"approaches file {path}"
    data = read_policy_yaml(Path(path), source)
    approaches = approaches_from_dict(data, source)
    logger.info("loaded recommended approaches from %s", path)
    return approaches


def approaches_from_dict(data: Any, source: str = "approaches") -> dict[Reason, Approach]:
    """Validate decoded approaches; raises HandoffConfigError naming the key path."""
    if not isinstance(data, dict) or set(data) != {"version", "approaches"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise HandoffConfigError(f"{source}: top level is {keys}; it must be a mapping with "
                                 "exactly the keys 'version' and 'approaches'")
    if data["version"] != SUPPORTED_APPROACHES_VERSION:
        raise HandoffConfigError(f"{source}: key 'version' is {data['version']!r}; this code "
                                 f"reads version {SUPPORTED_APPROACHES_VERSION}")

    entries = data["approaches"]
    names = sorted(reason.value for reason in Reason)
    if not isinstance(entries, dict) or sorted(entries) != names:
        found = sorted(entries) if isinstance(entries, dict) else type(entries).__name__
        raise HandoffConfigError(f"{source}: key 'approaches' has {found}; it must have "
                                 f"exactly one entry per reason: {', '.join(names)}")
    return {Reason(name): _approach(entry, f"approaches.{name}", source)
            for name, entry in entries.items()}


def _approach(data: Any, path: str, source: str) -> Approach:
    try:
        return Approach.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        key = ".".join([path, *(str(part) for part in first["loc"])])
        raise HandoffConfigError(f"{source}: key '{key}': {first['msg']}") from None


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def build_handoff_package(
    conversation: Conversation,
    turn_scores: Sequence[TurnScore],
    decision: Decision,
    *,
    routing: Mapping[str, Any] | None,
    embed: Embed,
    similar_index: SimilarCaseIndex | None,
    approaches: Mapping[Reason, Approach],
    now: datetime | None = None,
    bundle: str,
    reason: Reason | None = None,
    key_point_count: int = DEFAULT_KEY_POINTS,
    similar_count: int = DEFAULT_NEIGHBOURS,
) -> HandoffPackage:
    """Build the handoff package of `conversation` as decided by `decision`.

    `turn_scores` are the scores of the customer turns (any order, each turn at most once).
    `embed` maps texts to [n, dimension] sentence embeddings; it is called for the key
    points and, with an index, for the conversation vector. `now` defaults to the current
    UTC time, and a naive `now` is taken as UTC. `routing` is copied as given and must contain
    JSON values only. `reason` replaces `decision.reason_category` when the caller classified
    the reason by other means, such as the customer's text. Entities come from customer turns
    only, and suggested steps from assistant turns. The conversation's own id is excluded from
    the similar cases.
    """
    created_at = _as_utc(now) if now is not None else datetime.now(UTC)
    signals = _customer_signals(conversation, turn_scores)
    category = reason if reason is not None else decision.reason_category
    reasons = [_trigger_reason(item) for item in decision.reasons]

    package = HandoffPackage(
        package_id=str(uuid.uuid4()),
        conversation_id=conversation.id,
        created_at=created_at,
        bundle=bundle,
        urgency=_urgency(decision, created_at),
        reason=category,
        trigger=reasons[0] if reasons else None,
        reasons=reasons,
        key_points=select_key_points(conversation, embed, key_point_count),
        entities=extract_conversation_entities(conversation),
        suggested_steps=suggested_steps(conversation),
        approach=_recommended_approach(approaches, category or Reason.GENERAL),
        customer=customer_fields(conversation.customer),
        conversation=_conversation_info(conversation),
        assistant_confidence=confidence_trend(conversation),
        customer_signals=signals,
        similar_cases=_similar_cases(conversation, embed, similar_index, similar_count),
        routing=dict(routing) if routing is not None else None,
    )
    # Ids and counts only: message text and personal fields stay out of the log.
    logger.info("built handoff package %s for conversation %s: tier %s, reason %s, "
                "%d key points, %d entities, %d suggested steps, %d similar cases",
                package.package_id, conversation.id, decision.tier.value,
                category.value if category else "none", len(package.key_points),
                len(package.entities), len(package.suggested_steps),
                len(package.similar_cases))
    return package


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _urgency(decision: Decision, created_at: datetime) -> Urgency:
    sla = decision.sla_seconds
    return Urgency(
        tier=decision.tier,
        sla_seconds=sla,
        respond_by=created_at + timedelta(seconds=sla) if sla is not None else None,
        escalate=decision.escalate,
        prepare_agent=decision.prepare_agent,
        escalation_probability=round(decision.probability, 6),
        escalation_threshold=decision.thresholds.escalation,
        prepare_threshold=decision.thresholds.prepare,
    )


def _trigger_reason(reason: DecisionReason) -> TriggerReason:
    return TriggerReason(source=reason.source, code=reason.code, tier=reason.tier,
                         turn_index=reason.turn_index, description=reason.description,
                         evidence=dict(reason.evidence))


def _recommended_approach(
    approaches: Mapping[Reason, Approach], reason: Reason
) -> RecommendedApproach:
    approach = approaches.get(reason)
    if approach is None:
        raise ValueError(f"no recommended approach for reason {reason.value!r}; the "
                         f"approaches have {sorted(item.value for item in approaches)}, load "
                         "them with load_approaches() so that every reason is present")
    return RecommendedApproach(reason=reason, summary=approach.summary,
                               checklist=list(approach.checklist))


def customer_fields(profile: CustomerProfile | None) -> list[CustomerField]:
    """Return the set fields of a profile in schema order, marking those in PERSONAL_FIELDS."""
    if profile is None:
        return []
    return [
        CustomerField(name=name, value=value, personal=name in PERSONAL_FIELDS)
        for name, value in profile.model_dump().items()
        if value is not None
    ]


def _conversation_info(conversation: Conversation) -> ConversationInfo:
    moments = [_as_utc(moment) for moment in
               [conversation.started_at, *(turn.timestamp for turn in conversation.turns)]
               if moment is not None]
    duration = (moments[-1] - moments[0]).total_seconds() if len(moments) >= 2 else None
    stamped = [turn.timestamp for turn in conversation.turns if turn.timestamp is not None]
    return ConversationInfo(
        channel=conversation.channel,
        source=conversation.source,
        started_at=_as_utc(conversation.started_at) if conversation.started_at else None,
        last_message_at=_as_utc(stamped[-1]) if stamped else None,
        duration_seconds=duration,
        turn_count=len(conversation.turns),
        customer_turn_count=len(conversation.customer_turn_indices()),
    )


def confidence_trend(conversation: Conversation) -> ConfidenceTrend:
    """Return the assistant's confidence per answer, first, last, minimum and the slope."""
    answers = [ConfidencePoint(turn_index=index, confidence=turn.confidence)
               for index, turn in enumerate(conversation.turns)
               if turn.role is Role.ASSISTANT and turn.confidence is not None]
    if not answers:
        return ConfidenceTrend(answers=[], first=None, last=None, minimum=None,
                               slope_per_answer=None, direction=None)

    values = np.array([answer.confidence for answer in answers], dtype=np.float64)
    slope = _least_squares_slope(values)
    return ConfidenceTrend(
        answers=answers,
        first=float(values[0]),
        last=float(values[-1]),
        minimum=float(values.min()),
        slope_per_answer=round(slope, 6) if slope is not None else None,
        direction=_direction(slope),
    )


def _least_squares_slope(values: np.ndarray) -> float | None:
    if len(values) < 2:
        return None
    positions = np.arange(len(values), dtype=np.float64)
    centred = positions - positions.mean()
    return float(centred @ (values - values.mean()) / (centred @ centred))


def _direction(slope: float | None) -> Literal["falling", "flat", "rising"] | None:
    if slope is None:
        return None
    if slope < -FLAT_SLOPE:
        return "falling"
    return "rising" if slope > FLAT_SLOPE else "flat"


def _customer_signals(
    conversation: Conversation, turn_scores: Sequence[TurnScore]
) -> list[CustomerTurnSignal]:
    customer_turns = set(conversation.customer_turn_indices())
    seen: set[int] = set()
    signals: list[CustomerTurnSignal] = []
    for score in sorted(turn_scores, key=lambda item: item.turn_index):
        if score.turn_index not in customer_turns:
            raise ValueError(f"turn score for turn {score.turn_index} does not match a customer "
                             f"turn of conversation {conversation.id!r}, whose customer turns "
                             f"are {sorted(customer_turns)}; pass the scores of this "
                             "conversation")
        if score.turn_index in seen:
            raise ValueError(f"turn {score.turn_index} has more than one turn score; pass one "
                             "score per customer turn")
        missing = [key for key in SENTIMENT_KEYS if key not in score.sentiment]
        if missing:
            raise ValueError(f"turn score for turn {score.turn_index} lacks sentiment "
                             f"{missing}; it needs {list(SENTIMENT_KEYS)}")
        seen.add(score.turn_index)
        signals.append(CustomerTurnSignal(
            turn_index=score.turn_index,
            negative=round(score.sentiment["negative"], 6),
            neutral=round(score.sentiment["neutral"], 6),
            positive=round(score.sentiment["positive"], 6),
            frustration=round(score.frustration, 6),
            escalation_probability=round(score.escalation_probability, 6),
        ))
    return signals


def _similar_cases(
    conversation: Conversation, embed: Embed, index: SimilarCaseIndex | None, count: int
) -> list[SimilarCase]:
    if index is None:
        return []
    vector = conversation_vector(conversation, embed)
    if vector is None:
        return []
    return index.nearest(vector, k=count, exclude_ids={conversation.id})


# ---------------------------------------------------------------------------------------------
# JSON Schema
# ---------------------------------------------------------------------------------------------


def handoff_schema() -> dict[str, Any]:
    """Return the JSON Schema of a serialised HandoffPackage (draft 2020-12)."""
    schema = HandoffPackage.model_json_schema(mode="serialization")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def handoff_schema_text() -> str:
    """Return the schema as the exact text of the published file."""
    return json.dumps(handoff_schema(), indent=2, ensure_ascii=False) + "\n"


def write_handoff_schema(path: str | Path = DEFAULT_SCHEMA_PATH) -> Path:
    """Write the JSON Schema of HandoffPackage to `path` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(handoff_schema_text(), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------------------------


def render_text(package: HandoffPackage) -> str:
    """Render a package as plain text: headed sections, lines of at most 78 characters.

    The order puts what the agent needs first: the urgency and trigger, key points, details,
    what was already suggested and the approach, then the customer, signals and history.
    The output depends only on the package, so equal packages give equal text.
    """
    sections = [
        _header_lines(package),
        _section("KEY POINTS", [f"[turn {point.turn_index}] {point.text}"
                                for point in package.key_points]),
        _section("DETAILS", [_entity_text(entity) for entity in package.entities]),
        _section("ALREADY SUGGESTED (do not repeat)",
                 [f"[turn {step.turn_index}] {step.text}" for step in package.suggested_steps]),
        _approach_lines(package.approach),
        _section("WHY ESCALATED", [f"{reason.tier.value}, {reason.code}, turn "
                                   f"{reason.turn_index}: {reason.description}"
                                   for reason in package.reasons]),
        _section("CUSTOMER (* personal data)",
                 [f"{field.name}{'*' if field.personal else ''}: {_value_text(field.value)}"
                  for field in package.customer]),
        _signal_lines(package),
        _conversation_lines(package),
        _similar_lines(package),
        _section("ROUTING", [f"{key}: {_value_text(value)}"
                             for key, value in sorted((package.routing or {}).items())])
        if package.routing is not None else [],
    ]
    return "\n\n".join("\n".join(_fit(lines)) for lines in sections if lines) + "\n"


def _header_lines(package: HandoffPackage) -> list[str]:
    urgency = package.urgency
    if urgency.sla_seconds is None:
        deadline = "no handoff due" + (", prepare an agent" if urgency.prepare_agent else "")
    elif urgency.sla_seconds == 0:
        deadline = "respond now"
    else:
        deadline = (f"respond within {_duration_text(urgency.sla_seconds)}, by "
                    f"{_time_text(urgency.respond_by)}")
    lines = [
        f"HANDOFF: {urgency.tier.value.upper()} ({deadline})",
        f"Reason: {package.reason.value if package.reason else 'none'}",
    ]
    if package.trigger is not None:
        trigger = package.trigger
        lines.extend(_wrap(f"Trigger: {trigger.description} ({trigger.code}, turn "
                           f"{trigger.turn_index})"))
    lines.append(f"Escalation probability: {urgency.escalation_probability:.2f} (threshold "
                 f"{urgency.escalation_threshold:.2f})")
    lines.append(f"Conversation: {package.conversation_id}")
    lines.append(f"Package: {package.package_id}")
    return lines


def _entity_text(entity: Entity) -> str:
    label = entity.text if entity.value in (entity.text, "") else \
        f"{entity.text} ({entity.value})"
    return f"{entity.kind.value}: {label} [turn {entity.turn_index}]"


def _approach_lines(approach: RecommendedApproach) -> list[str]:
    lines = [f"RECOMMENDED APPROACH ({approach.reason.value})",
             *_wrap(approach.summary, indent="")]
    for item in approach.checklist:
        lines.extend(_wrap(f"[ ] {item}", indent="    "))
    return lines


def _signal_lines(package: HandoffPackage) -> list[str]:
    trend = package.assistant_confidence
    lines: list[str] = []
    if trend.slope_per_answer is not None:
        lines.extend(_wrap(f"Assistant confidence over {len(trend.answers)} answers: "
                           f"{trend.direction} ({trend.slope_per_answer:+.3f} per answer), first "
                           f"{trend.first:.2f}, last {trend.last:.2f}, min {trend.minimum:.2f}"))
    elif trend.answers:
        lines.append(f"Assistant confidence: {trend.answers[0].confidence:.2f} (one answer)")
    else:
        lines.append("Assistant confidence: not reported")
    for signal in package.customer_signals:
        lines.append(f"turn {signal.turn_index}: negative {signal.negative:.2f}, frustration "
                     f"{signal.frustration:.2f}, escalation {signal.escalation_probability:.2f}")
    return ["SIGNALS", *lines]


def _conversation_lines(package: HandoffPackage) -> list[str]:
    info = package.conversation
    duration = "unknown" if info.duration_seconds is None else \
        _duration_text(info.duration_seconds)
    lines = [f"{info.turn_count} turns, {info.customer_turn_count} from the customer, "
             f"duration {duration}"]
    if info.channel or info.source:
        lines.append(f"channel {info.channel or 'unknown'}, source {info.source or 'unknown'}")
    if info.started_at is not None:
        lines.append(f"started {_time_text(info.started_at)}")
    return ["CONVERSATION", *lines]


def _similar_lines(package: HandoffPackage) -> list[str]:
    if not package.similar_cases:
        return _section("SIMILAR RESOLVED CASES", [])
    lines = ["SIMILAR RESOLVED CASES"]
    for case in package.similar_cases:
        reason = case.reason.value if case.reason else "no reason recorded"
        lines.append(f"- {case.id} (similarity {case.score:.2f}, {reason})")
        lines.extend(_wrap(f"Problem: {case.summary}", first="  ", indent="    "))
        lines.extend(_wrap(f"Resolution: {case.resolution}", first="  ", indent="    "))
    return lines


def _section(title: str, items: list[str]) -> list[str]:
    if not items:
        return [title, "- none"]
    lines = [title]
    for item in items:
        lines.extend(_wrap(f"- {item}", indent="  "))
    return lines


def _fit(lines: list[str]) -> list[str]:
    # Ids and names can be up to 200 characters, so even unwrapped lines may need a break.
    fitted: list[str] = []
    for line in lines:
        fitted.extend(_wrap(line, indent="  ") if len(line) > TEXT_WIDTH else [line])
    return fitted


def _wrap(text: str, *, first: str = "", indent: str = "  ") -> list[str]:
    return textwrap.wrap(" ".join(text.split()), width=TEXT_WIDTH, initial_indent=first,
                         subsequent_indent=indent, break_on_hyphens=False) or [first]


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _time_text(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    return _as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration_text(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


if __name__ == "__main__":
    print(write_handoff_schema())
