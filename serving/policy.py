"""Rule policy: the catalogue of escalation rules and the validated YAML that configures them.

`load_policy` reads `serving/policies/default.yaml` or another file of the same shape and
raises PolicyError naming the key path, the value and what is allowed.
"""

from __future__ import annotations

import logging
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
from serving.keywords import KeywordMatcher, NegationDetector, validate_phrase
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

# Routing hints. A rule missing here gives no hint about which team should take over.
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
