"""Escalation rules: their typed matches and turn-by-turn evaluation under a policy.

Each rule forces a tier (immediate, rapid or scheduled) when it fires. Rules are causal: a
match at turn t depends only on turns 0..t and the customer profile. A live service therefore
evaluates turn by turn with `match_turn` and a `RuleState` kept between calls, and offline code
runs `match_conversation` once and filters the matches by turn index. The policy that
configures the rules lives in `serving.policy`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.keywords import KeywordHit
from serving.policy import (
    DEFAULT_POLICY_PATH,
    KEYWORD_RULES,
    RULE_IDS,
    RULE_REASONS,
    RULE_TIERS,
    Policy,
    RuleConfig,
    Thresholds,
    _key_path,
    load_policy,
    policy_from_dict,
)
from serving.schema import Conversation, CustomerProfile, Role, Turn
from serving.tiers import Reason, Tier

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_POLICY_PATH", "KEYWORD_RULES", "RULE_IDS", "RULE_REASONS", "RULE_TIERS", "Policy",
    "RuleConfig", "RuleMatch", "RuleState", "Thresholds", "load_policy", "match_conversation",
    "match_turn", "policy_from_dict",
]

_CUSTOMER_KEYWORD_DESCRIPTIONS: dict[str, str] = {
    "urgent_keyword": "customer message contains urgency language",
    "billing_dispute": "customer message contains billing-dispute language",
    "frustration_language": "customer message contains frustration language",
    "technical_complexity": "customer message contains a technical-complexity cue",
    "human_request": "customer asks for a human",
}

# Differences of confidences are rounded before comparison so that 0.70 - 0.50 counts as a
# drop of 0.20 and not 0.19999999999999996.
_DROP_DECIMALS = 9

_LETTER_RUN = re.compile(r"[^\W\d_]+")


# ---------------------------------------------------------------------------------------------
# Matches and state
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleMatch:
    """One rule firing at one turn, with the evidence behind it."""

    rule: str
    tier: Tier
    reason: Reason | None
    turn_index: int
    description: str
    span: tuple[int, int] | None = None
    matched_text: str | None = None
    values: dict[str, float | int | str] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the match as plain JSON types."""
        return {
            "rule": self.rule,
            "tier": self.tier.value,
            "reason": self.reason.value if self.reason else None,
            "turn_index": self.turn_index,
            "description": self.description,
            "span": list(self.span) if self.span else None,
            "matched_text": self.matched_text,
            "values": dict(self.values),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleMatch:
        """Rebuild a match from `to_dict` output."""
        span = data.get("span")
        reason = data.get("reason")
        return cls(
            rule=data["rule"],
            tier=Tier(data["tier"]),
            reason=Reason(reason) if reason else None,
            turn_index=int(data["turn_index"]),
            description=data["description"],
            span=(int(span[0]), int(span[1])) if span else None,
            matched_text=data.get("matched_text"),
            values=dict(data.get("values") or {}),
        )


class RuleState(BaseModel):
    """Running counters of one conversation between calls of `match_turn`."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    turns_seen: int = Field(default=0, ge=0)
    customer_turns_seen: int = Field(default=0, ge=0)
    consecutive_low_confidence: int = Field(default=0, ge=0)
    max_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    uncertain_answers: int = Field(default=0, ge=0)
    start_time: datetime | None = None
    fired_once: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the state as plain JSON types, for storage between requests."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleState:
        """Rebuild a state from `to_dict` output. Raises ValueError when it is malformed."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{_key_path(tuple(detail['loc']))}: {detail['msg']}"
                for detail in error.errors(include_url=False)
            )
            raise ValueError(f"rule state is invalid ({problems}). Evaluate the conversation "
                             "again from turn 0 with a fresh RuleState()") from None


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def match_conversation(
    conversation: Conversation, policy: Policy, state: RuleState | None = None
) -> list[RuleMatch]:
    """Evaluate every turn the state has not seen yet, in order, and return their matches.

    Without a state all turns are evaluated. With a stored state, only the turns appended
    since it was saved are, and `state` is updated in place.
    """
    state = RuleState() if state is None else state
    matches: list[RuleMatch] = []
    for turn_index in range(state.turns_seen, len(conversation.turns)):
        matches.extend(match_turn(conversation, turn_index, state, policy))
    return matches


def match_turn(
    conversation: Conversation, turn_index: int, state: RuleState, policy: Policy
) -> list[RuleMatch]:
    """Update `state` with turn `turn_index` and return the matches that fire at that turn.

    Turns must be fed in order, starting at 0: the counters in `state` would otherwise count
    a turn twice or skip one, so an out-of-order index raises ValueError.
    """
    _check_turn_index(conversation, turn_index, state)
    turn = conversation.turns[turn_index]
    _update_start_time(state, conversation, turn)

    matches: list[RuleMatch] = []
    if turn.role is Role.ASSISTANT:
        matches.extend(_assistant_matches(turn, turn_index, state, policy))
    elif turn.role is Role.CUSTOMER:
        matches.extend(_customer_matches(turn, turn_index, policy))
        if state.customer_turns_seen == 0 and conversation.customer is not None:
            matches.extend(_profile_matches(conversation.customer, turn_index, policy))
        state.customer_turns_seen += 1
    matches.extend(_timing_matches(turn, turn_index, state, policy))

    state.turns_seen += 1
    enabled = [match for match in matches if policy.enabled(match.rule)]
    return sorted(enabled, key=lambda match: RULE_IDS.index(match.rule))


def _check_turn_index(conversation: Conversation, turn_index: int, state: RuleState) -> None:
    if not 0 <= turn_index < len(conversation.turns):
        raise ValueError(f"turn_index {turn_index} is out of range; conversation "
                         f"{conversation.id!r} has {len(conversation.turns)} turns")
    if turn_index != state.turns_seen:
        raise ValueError(f"turn_index {turn_index} is out of order for conversation "
                         f"{conversation.id!r}: the state has seen {state.turns_seen} turns, "
                         f"so the next turn to evaluate is {state.turns_seen}")


def _update_start_time(state: RuleState, conversation: Conversation, turn: Turn) -> None:
    if state.start_time is None:
        state.start_time = conversation.started_at or turn.timestamp


def _make_match(rule: str, turn_index: int, description: str, **evidence: Any) -> RuleMatch:
    return RuleMatch(rule=rule, tier=RULE_TIERS[rule], reason=RULE_REASONS.get(rule),
                     turn_index=turn_index, description=description, **evidence)


def _assistant_matches(
    turn: Turn, turn_index: int, state: RuleState, policy: Policy
) -> list[RuleMatch]:
    matches: list[RuleMatch] = []
    if turn.confidence is not None:
        matches.extend(_confidence_matches(turn.confidence, turn_index, state, policy))

    if turn.kb_results == 0:
        matches.append(_make_match(
            "no_kb_results", turn_index,
            "the knowledge-base search behind this answer returned no results",
            values={"kb_results": 0},
        ))

    uncertain = _uncertain_answer_match(turn, turn_index, state, policy)
    if uncertain is not None:
        matches.append(uncertain)
    return matches


def _confidence_matches(
    confidence: float, turn_index: int, state: RuleState, policy: Policy
) -> list[RuleMatch]:
    matches: list[RuleMatch] = []

    low = policy.immediate.low_confidence
    if confidence < low.threshold:
        matches.append(_make_match(
            "low_confidence", turn_index,
            f"assistant confidence {confidence:.2f} is below {low.threshold:.2f}",
            values={"confidence": confidence, "threshold": low.threshold},
        ))

    # Counted even while the rule is disabled, so that a policy that switches it on
    # mid-conversation starts from the true run length.
    consecutive = policy.immediate.consecutive_low_confidence
    if confidence < consecutive.threshold:
        state.consecutive_low_confidence += 1
    else:
        state.consecutive_low_confidence = 0
    if state.consecutive_low_confidence >= consecutive.min_turns:
        matches.append(_make_match(
            "consecutive_low_confidence", turn_index,
            f"assistant confidence has been below {consecutive.threshold:.2f} on "
            f"{state.consecutive_low_confidence} answers in a row",
            values={"run_length": state.consecutive_low_confidence,
                    "threshold": consecutive.threshold, "min_turns": consecutive.min_turns},
        ))

    previous_max = state.max_confidence
    state.max_confidence = confidence if previous_max is None else max(previous_max, confidence)
    drop = round(state.max_confidence - confidence, _DROP_DECIMALS)
    min_drop = policy.rapid.confidence_drop.min_drop
    if drop >= min_drop:
        matches.append(_make_match(
            "confidence_drop", turn_index,
            f"assistant confidence fell from {state.max_confidence:.2f} to {confidence:.2f}, "
            f"a drop of {drop:.2f} (limit {min_drop:.2f})",
            values={"max_confidence": state.max_confidence, "confidence": confidence,
                    "drop": drop, "min_drop": min_drop},
        ))
    return matches


def _uncertain_answer_match(
    turn: Turn, turn_index: int, state: RuleState, policy: Policy
) -> RuleMatch | None:
    hits = policy.matcher("assistant_uncertain").find(turn.text)
    if not hits:
        return None

    state.uncertain_answers += 1
    config = policy.rapid.assistant_uncertain
    if state.uncertain_answers < config.min_answers:
        return None
    hit = hits[0]
    return _make_match(
        "assistant_uncertain", turn_index,
        f"assistant answer is uncertain ({hit.text!r}), {state.uncertain_answers} such "
        f"answers so far (limit {config.min_answers})",
        span=(hit.start, hit.end), matched_text=hit.text,
        values={"keyword": hit.phrase, "uncertain_answers": state.uncertain_answers,
                "min_answers": config.min_answers},
    )


def _customer_matches(turn: Turn, turn_index: int, policy: Policy) -> list[RuleMatch]:
    matches: list[RuleMatch] = []
    for rule, description in _CUSTOMER_KEYWORD_DESCRIPTIONS.items():
        if not policy.enabled(rule):
            continue
        hits = policy.matcher(rule).find(turn.text)
        if hits:
            matches.append(_keyword_match(rule, turn_index, description, hits))

    shouting = _shouting_match(turn.text, turn_index, policy)
    if shouting is not None:
        matches.append(shouting)

    below = policy.scheduled.low_csat.below
    if turn.csat is not None and turn.csat < below:
        matches.append(_make_match(
            "low_csat", turn_index, f"customer rated the conversation {turn.csat}, below {below}",
            values={"csat": turn.csat, "below": below},
        ))
    return matches


def _keyword_match(
    rule: str, turn_index: int, description: str, hits: list[KeywordHit]
) -> RuleMatch:
    hit = hits[0]
    return _make_match(
        rule, turn_index, f"{description}: {hit.text!r}",
        span=(hit.start, hit.end), matched_text=hit.text,
        values={"keyword": hit.phrase, "hits": len(hits)},
    )


def _shouting_match(text: str, turn_index: int, policy: Policy) -> RuleMatch | None:
    config = policy.rapid.shouting
    shouted: list[re.Match[str]] = []
    upper_letters = 0
    cased_letters = 0
    for word in _LETTER_RUN.finditer(text):
        letters = word.group()
        if policy.is_shouting_ignored(letters):
            continue
        upper_letters += sum(character.isupper() for character in letters)
        cased_letters += sum(character.isupper() or character.islower() for character in letters)
        if len(letters) >= config.min_word_letters and letters.isupper():
            shouted.append(word)

    if len(shouted) < config.min_words or cased_letters == 0:
        return None
    ratio = upper_letters / cased_letters
    if ratio < config.min_upper_ratio:
        return None

    start, end = shouted[0].start(), shouted[-1].end()
    return _make_match(
        "shouting", turn_index,
        f"customer message has {len(shouted)} all-caps words and {ratio:.0%} of its letters "
        "in upper case",
        span=(start, end), matched_text=text[start:end],
        values={"caps_words": len(shouted), "upper_ratio": round(ratio, 3),
                "min_words": config.min_words, "min_upper_ratio": config.min_upper_ratio},
    )


def _profile_matches(
    customer: CustomerProfile, turn_index: int, policy: Policy
) -> list[RuleMatch]:
    matches: list[RuleMatch] = []

    repeat = policy.scheduled.repeat_customer
    if customer.previous_escalations >= repeat.min_previous_escalations:
        matches.append(_make_match(
            "repeat_customer", turn_index,
            f"customer was escalated {customer.previous_escalations} time(s) before "
            f"(threshold {repeat.min_previous_escalations})",
            values={"previous_escalations": customer.previous_escalations,
                    "min_previous_escalations": repeat.min_previous_escalations},
        ))

    flags = [flag for flag in policy.scheduled.account_flag.flags if getattr(customer, flag)]
    if flags:
        matches.append(_make_match(
            "account_flag", turn_index, f"customer account is flagged {', '.join(flags)}",
            values={"flags": ",".join(flags)},
        ))

    if customer.region is not None and policy.is_escalation_region(customer.region):
        matches.append(_make_match(
            "region", turn_index,
            f"customer region {customer.region!r} is one of the policy's escalation regions",
            values={"region": customer.region},
        ))
    return matches


def _timing_matches(
    turn: Turn, turn_index: int, state: RuleState, policy: Policy
) -> list[RuleMatch]:
    config = policy.scheduled.long_unresolved
    if not config.enabled or "long_unresolved" in state.fired_once:
        return []
    if turn.timestamp is None or state.start_time is None:
        return []

    # NOTE: the schema has no resolution marker, so this fires on elapsed time alone, also in
    # a conversation the customer considers settled.
    elapsed = (_as_utc(turn.timestamp) - _as_utc(state.start_time)).total_seconds()
    if elapsed <= config.max_seconds:
        return []
    state.fired_once.append("long_unresolved")
    return [_make_match(
        "long_unresolved", turn_index,
        f"conversation has run {elapsed:.0f} s without resolution, longer than "
        f"{config.max_seconds:.0f} s",
        values={"elapsed_seconds": elapsed, "max_seconds": config.max_seconds},
    )]


def _as_utc(moment: datetime) -> datetime:
    # Naive timestamps are taken as UTC, as serving.schema does when it checks turn order.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
