"""Decision: combine the model's escalation probability and the rule matches into a tier.

Every decision lists why: each rule match with its evidence, and the model's probability with
the threshold it crossed. The tier is the most urgent of all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from serving.tiers import Reason, Tier, most_urgent

if TYPE_CHECKING:
    from serving.rules import RuleMatch

MODEL_REASON_CODE = "escalation_probability"


@dataclass(frozen=True)
class DecisionThresholds:
    """Probability thresholds of the escalation head and the tier the model alone can assign."""

    escalation: float
    prepare: float
    model_tier: Tier = Tier.RAPID

    def __post_init__(self) -> None:
        for name in ("escalation", "prepare"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"threshold {name!r} is {value}, it must be in [0, 1]")
        if self.prepare > self.escalation:
            raise ValueError(
                f"the prepare threshold {self.prepare} is above the escalation threshold "
                f"{self.escalation}; set prepare at or below escalation"
            )
        if self.model_tier is Tier.NONE:
            raise ValueError("model_tier must be immediate, rapid or scheduled, not 'none'")


@dataclass(frozen=True)
class DecisionReason:
    """One cause of a decision, with the evidence an agent or analyst can check."""

    source: Literal["rule", "model"]
    code: str
    tier: Tier
    turn_index: int
    description: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the reason as JSON-serialisable plain types."""
        return {
            "source": self.source,
            "code": self.code,
            "tier": self.tier.value,
            "turn_index": self.turn_index,
            "description": self.description,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Decision:
    """Whether to hand the conversation to a human now, how urgently and why."""

    tier: Tier
    escalate: bool
    prepare_agent: bool
    probability: float
    thresholds: DecisionThresholds
    reasons: tuple[DecisionReason, ...]
    reason_category: Reason | None

    @property
    def sla_seconds(self) -> int | None:
        """Seconds within which an agent must join, or None when no handoff is due."""
        return self.tier.sla_seconds

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as JSON-serialisable plain types."""
        return {
            "tier": self.tier.value,
            "escalate": self.escalate,
            "prepare_agent": self.prepare_agent,
            "sla_seconds": self.sla_seconds,
            "probability": round(self.probability, 6),
            "threshold": self.thresholds.escalation,
            "prepare_threshold": self.thresholds.prepare,
            "reason_category": self.reason_category.value if self.reason_category else None,
            "reasons": [reason.to_dict() for reason in self.reasons],
        }


def decide(
    probability: float,
    turn_index: int,
    matches: Sequence[RuleMatch],
    thresholds: DecisionThresholds,
) -> Decision:
    """Decide at `turn_index` from the escalation probability and the rule matches so far.

    `matches` are all matches with a turn index at or before `turn_index`: a rule that fired
    earlier keeps the conversation escalated, because the cause has not been handled yet.
    """
    reasons = [_rule_reason(match) for match in matches if match.turn_index <= turn_index]
    if probability >= thresholds.escalation:
        reasons.append(
            DecisionReason(
                source="model",
                code=MODEL_REASON_CODE,
                tier=thresholds.model_tier,
                turn_index=turn_index,
                description=(f"escalation probability {probability:.2f} crossed the threshold "
                             f"{thresholds.escalation:.2f}"),
                evidence={"probability": round(probability, 6),
                          "threshold": thresholds.escalation},
            )
        )
    reasons.sort(key=lambda reason: (-reason.tier.severity, reason.turn_index))

    tier = most_urgent([reason.tier for reason in reasons])
    escalate = tier is not Tier.NONE
    return Decision(
        tier=tier,
        escalate=escalate,
        prepare_agent=not escalate and probability >= thresholds.prepare,
        probability=probability,
        thresholds=thresholds,
        reasons=tuple(reasons),
        reason_category=_reason_category(matches, turn_index, escalate),
    )


def _rule_reason(match: RuleMatch) -> DecisionReason:
    evidence: dict[str, Any] = dict(match.values)
    if match.matched_text is not None:
        evidence["matched_text"] = match.matched_text
    if match.span is not None:
        evidence["span"] = list(match.span)
    return DecisionReason(
        source="rule",
        code=match.rule,
        tier=match.tier,
        turn_index=match.turn_index,
        description=match.description,
        evidence=evidence,
    )


def _reason_category(
    matches: Sequence[RuleMatch], turn_index: int, escalate: bool
) -> Reason | None:
    if not escalate:
        return None
    hinted = [match for match in matches
              if match.turn_index <= turn_index and match.reason is not None]
    if not hinted:
        return Reason.GENERAL
    # An urgent cue outranks the topic; otherwise the most urgent topic cue decides.
    if any(match.reason is Reason.URGENT for match in hinted):
        return Reason.URGENT
    hinted.sort(key=lambda match: (-match.tier.severity, match.turn_index))
    return hinted[0].reason
