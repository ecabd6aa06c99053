"""Escalation rules: the policy that configures them, their matches and turn-by-turn evaluation.

Each rule forces a tier (immediate, rapid or scheduled) when it fires. Rules are causal: a
match at turn t depends only on turns 0..t and the customer profile. A live service therefore
evaluates turn by turn with `match_turn` and a `RuleState` kept between calls, and offline code
runs `match_conversation` once and filters the matches by turn index.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    model_validator,
)

from serving.errors import PolicyError
from serving.keywords import KeywordHit, KeywordMatcher, NegationDetector, validate_phrase
from serving.schema import Conversation, CustomerProfile, Role, Turn
from serving.tiers import Reason, Tier
from serving.yaml_loader import UniqueKeyLoader

logger = logging.getLogger(__name__)

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policies" / "default.yaml"

# Rule ids in evaluation order, with the tier each one forces. The policy YAML has one section
# per tier and one key per rule id inside it.
RULE_TIERS: dict[str, Tier] = {
    "low_confidence": Tier.IMMEDIATE,
    "consecutive_low_confidence": Tier.IMMEDIATE,
    "no_kb_results": Tier.IMMEDIATE,
    "urgent_keyword": Tier.IMMEDIATE,
    "billing_dispute": Tier.IMMEDIATE,
    "confidence_drop": Tier.RAPID,
    "frustration_language": Tier.RAPID,
    "shouting": Tier.RAPID,
    "technical_complexity": Tier.RAPID,
    "assistant_uncertain": Tier.RAPID,
    "human_request": Tier.RAPID,
    "long_unresolved": Tier.SCHEDULED,
    "low_csat": Tier.SCHEDULED,
    "repeat_customer": Tier.SCHEDULED,
    "account_flag": Tier.SCHEDULED,
    "region": Tier.SCHEDULED,
}
RULE_IDS: tuple[str, ...] = tuple(RULE_TIERS)

# Routing hints. A rule missing here says nothing about which team should take over.
RULE_REASONS: dict[str, Reason] = {
    "urgent_keyword": Reason.URGENT,
    "billing_dispute": Reason.BILLING,
    "technical_complexity": Reason.TECHNICAL,
    "account_flag": Reason.ACCOUNT,
}

KEYWORD_RULES: tuple[str, ...] = (
    "urgent_keyword",
    "billing_dispute",
    "frustration_language",
    "technical_complexity",
    "assistant_uncertain",
    "human_request",
)

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

AccountFlag = Literal["past_due", "vip", "enterprise"]


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


def _check_unit_interval(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{value!r} is not in [0, 1]")
    return value


UnitInterval = Annotated[float, Strict(), AfterValidator(_check_unit_interval)]
Phrase = Annotated[str, Strict(), AfterValidator(validate_phrase)]
StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Config):
    """Model probability thresholds that override the bundle's. None keeps the bundle's value."""

    escalation: UnitInterval | None = None
    prepare: UnitInterval | None = None

    @model_validator(mode="after")
    def _check_order(self) -> Thresholds:
        if self.escalation is not None and self.prepare is not None \
                and self.prepare > self.escalation:
            raise ValueError(
                f"prepare {self.prepare} is above escalation {self.escalation}. An agent is "
                "prepared before the handoff, so set prepare <= escalation"
            )
        return self


class NegationConfig(_Config):
    """Cue phrases and window size of the negation check (see serving.keywords)."""

    window_tokens: StrictInt = Field(ge=1, le=20)
    cues: list[Phrase]
    post_cues: list[Phrase]
    pseudo_cues: list[Phrase]
    clause_breaks: list[Phrase]


class RuleConfig(_Config):
    """Settings every rule has."""

    enabled: StrictBool = True


class ConfidenceRule(RuleConfig):
    """Settings of the rule that fires on an assistant confidence below `threshold`."""

    threshold: UnitInterval


class ConsecutiveConfidenceRule(RuleConfig):
    """Settings of the rule that fires on `min_turns` confidences in a row below `threshold`."""

    threshold: UnitInterval
    min_turns: StrictInt = Field(ge=1)


class SwitchRule(RuleConfig):
    """A rule without parameters."""


class KeywordRule(RuleConfig):
    """Settings of a rule that fires on a phrase from `keywords`.

    With `negation_aware` true, a negated occurrence ("not urgent") is ignored.
    """

    negation_aware: StrictBool = True
    keywords: list[Phrase] = Field(min_length=1)


class UncertainAnswerRule(KeywordRule):
    """Settings of the rule that fires on each uncertain answer from the `min_answers`-th on."""

    min_answers: StrictInt = Field(ge=1)


class ConfidenceDropRule(RuleConfig):
    """Settings of the rule that fires on a confidence `min_drop` or more below the max so far."""

    min_drop: UnitInterval = Field(gt=0.0)


class ShoutingRule(RuleConfig):
    """Settings of the rule that fires on a customer message written mostly in capitals."""

    min_words: StrictInt = Field(ge=1)
    min_word_letters: StrictInt = Field(ge=1)
    min_upper_ratio: UnitInterval
    ignore_words: list[Annotated[str, Strict()]]


class LongUnresolvedRule(RuleConfig):
    """Settings of the rule that fires on the first turn more than `max_seconds` after the start."""

    max_seconds: float = Field(gt=0.0, strict=True)


class LowCsatRule(RuleConfig):
    """Settings of the rule that fires on a customer CSAT rating (1-5) below `below`."""

    below: StrictInt = Field(ge=2, le=6)


class RepeatCustomerRule(RuleConfig):
    """Settings of the rule that fires for repeat customers.

    It fires when the profile counts `min_previous_escalations` or more earlier escalations.
    """

    min_previous_escalations: StrictInt = Field(ge=1)


class AccountFlagRule(RuleConfig):
    """Settings of the rule that fires for a customer whose profile has one of `flags` set."""

    flags: list[AccountFlag]


class RegionRule(RuleConfig):
    """Settings of the rule that fires for a customer region in `regions` (case-insensitive)."""

    regions: list[Annotated[str, Strict()]]


class ImmediateRules(_Config):
    """Rules that hand the conversation to a human at once."""

    low_confidence: ConfidenceRule
    consecutive_low_confidence: ConsecutiveConfidenceRule
    no_kb_results: SwitchRule
    urgent_keyword: KeywordRule
    billing_dispute: KeywordRule


class RapidRules(_Config):
    """Rules that call for a human within two minutes."""

    confidence_drop: ConfidenceDropRule
    frustration_language: KeywordRule
    shouting: ShoutingRule
    technical_complexity: KeywordRule
    assistant_uncertain: UncertainAnswerRule
    human_request: KeywordRule


class ScheduledRules(_Config):
    """Rules that call for a human within five minutes."""

    long_unresolved: LongUnresolvedRule
    low_csat: LowCsatRule
    repeat_customer: RepeatCustomerRule
    account_flag: AccountFlagRule
    region: RegionRule


_SECTION_OF_TIER: dict[Tier, str] = {
    Tier.IMMEDIATE: "immediate",
    Tier.RAPID: "rapid",
    Tier.SCHEDULED: "scheduled",
}


class Policy(_Config):
    """The validated rule policy, with its keyword matchers compiled once at construction.

    Build variants with `policy_from_dict`, not `model_copy(update=...)`, because a copy keeps
    the matchers compiled from the original keywords.
    """

    version: Literal[1]
    thresholds: Thresholds = Thresholds()
    negation: NegationConfig
    immediate: ImmediateRules
    rapid: RapidRules
    scheduled: ScheduledRules

    _matchers: dict[str, KeywordMatcher] = PrivateAttr(default_factory=dict)
    _shouting_ignored: frozenset[str] = PrivateAttr(default=frozenset())
    _regions: frozenset[str] = PrivateAttr(default=frozenset())

    def model_post_init(self, context: Any, /) -> None:
        negation = NegationDetector(
            cues=self.negation.cues,
            post_cues=self.negation.post_cues,
            pseudo_cues=self.negation.pseudo_cues,
            clause_breaks=self.negation.clause_breaks,
            window_tokens=self.negation.window_tokens,
        )
        for rule in KEYWORD_RULES:
            config = self.rule(rule)
            assert isinstance(config, KeywordRule)
            self._matchers[rule] = KeywordMatcher(
                config.keywords, negation if config.negation_aware else None
            )
        self._shouting_ignored = frozenset(
            word.casefold() for word in self.rapid.shouting.ignore_words
        )
        self._regions = frozenset(region.casefold() for region in self.scheduled.region.regions)

    def rule(self, rule_id: str) -> RuleConfig:
        """Return the settings of rule `rule_id`. Raises KeyError for an unknown id."""
        if rule_id not in RULE_TIERS:
            raise KeyError(f"unknown rule id {rule_id!r}, expected one of: {', '.join(RULE_IDS)}")
        section = getattr(self, _SECTION_OF_TIER[RULE_TIERS[rule_id]])
        config: RuleConfig = getattr(section, rule_id)
        return config

    def enabled(self, rule_id: str) -> bool:
        """Return whether rule `rule_id` is switched on."""
        return self.rule(rule_id).enabled

    def matcher(self, rule_id: str) -> KeywordMatcher:
        """Return the compiled phrase matcher of keyword rule `rule_id`."""
        return self._matchers[rule_id]

    def is_shouting_ignored(self, word: str) -> bool:
        """Return whether `word` is an acronym the shouting rule leaves out."""
        return word.casefold() in self._shouting_ignored

    def is_escalation_region(self, region: str) -> bool:
        """Return whether customers of `region` always get a human."""
        return region.casefold() in self._regions


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy YAML file; None loads the packaged default policy.

    Raises PolicyError naming the file, and for invalid content the key and the value.
    """
    resolved = DEFAULT_POLICY_PATH if path is None else Path(path)
    source = f"policy file {resolved}"
    text = _read_policy_text(resolved, source)

    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise PolicyError(f"{source}: invalid YAML: {_describe_yaml_error(error)}") from None
    if data is None:
        raise PolicyError(f"{source}: file is empty. Copy {DEFAULT_POLICY_PATH} as a start")

    policy = policy_from_dict(data, source=source)
    logger.info("loaded rule policy from %s", resolved)
    return policy


def _read_policy_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{source}: file not found. Pass the path of a policy YAML file, or "
                          "None for the default policy") from None
    except UnicodeDecodeError as error:
        raise PolicyError(f"{source}: not UTF-8 text ({error.reason} at byte {error.start}). "
                          "Save the file as UTF-8") from None
    except OSError as error:
        raise PolicyError(f"{source}: cannot be read: {error.strerror}") from None


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def policy_from_dict(data: Any, source: str = "policy") -> Policy:
    """Validate a decoded policy mapping; `source` prefixes every error message.

    Raises PolicyError with one line per problem, each naming the key path, the value and
    what is allowed.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: top level is a {type(data).__name__}, but it must be a "
                          f"mapping with the keys {', '.join(Policy.model_fields)}")
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        lines = [f"{source}: {_describe_problem(detail)}"
                 for detail in error.errors(include_url=False)]
        raise PolicyError("\n".join(lines)) from None


def _describe_problem(detail: Any) -> str:
    location = tuple(detail.get("loc", ()))
    key = _key_path(location)
    kind = detail.get("type")
    value = detail.get("input")

    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(location[:-1])) or "none"
        return f"unknown key '{key}'; allowed keys here: {allowed}"
    if kind == "missing":
        return f"key '{key}' is missing; see {DEFAULT_POLICY_PATH} for an example"
    if kind == "value_error":
        return f"key '{key}': {detail['ctx']['error']}"
    message = str(detail.get("msg", "invalid value"))
    return f"key '{key}': {_short_repr(value)} is invalid: {message[:1].lower()}{message[1:]}"


def _key_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _allowed_keys(location: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Policy
    for part in location:
        field_info = model.model_fields.get(str(part))
        annotation = field_info.annotation if field_info else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
