"""Tests of the decision: tiers from rules and the model, prepare state and reason order."""

from __future__ import annotations

import pytest

from serving.decision import DecisionThresholds, decide
from serving.rules import RuleMatch
from serving.tiers import Reason, Tier

THRESHOLDS = DecisionThresholds(escalation=0.6, prepare=0.3)


def _match(rule: str, tier: Tier, turn_index: int, reason: Reason | None = None) -> RuleMatch:
    return RuleMatch(rule=rule, tier=tier, reason=reason, turn_index=turn_index,
                     description=f"{rule} fired", matched_text="x", span=(0, 1))


def test_no_signal_gives_tier_none() -> None:
    decision = decide(0.1, 3, [], THRESHOLDS)

    assert decision.tier is Tier.NONE
    assert decision.escalate is False
    assert decision.prepare_agent is False
    assert decision.reasons == ()
    assert decision.reason_category is None
    assert decision.sla_seconds is None


def test_probability_between_thresholds_prepares_agent() -> None:
    decision = decide(0.45, 3, [], THRESHOLDS)

    assert decision.tier is Tier.NONE
    assert decision.prepare_agent is True


def test_probability_over_threshold_escalates_rapid() -> None:
    decision = decide(0.61, 3, [], THRESHOLDS)

    assert decision.tier is Tier.RAPID
    assert decision.escalate is True
    assert decision.prepare_agent is False
    assert decision.reasons[0].source == "model"
    assert "0.61" in decision.reasons[0].description
    assert decision.reasons[0].evidence["threshold"] == 0.6
    assert decision.reason_category is Reason.GENERAL
    assert decision.sla_seconds == 120


def test_rule_tier_outranks_model_tier() -> None:
    matches = [_match("billing_dispute", Tier.IMMEDIATE, 1, Reason.BILLING)]

    decision = decide(0.9, 3, matches, THRESHOLDS)

    assert decision.tier is Tier.IMMEDIATE
    assert [reason.code for reason in decision.reasons] == ["billing_dispute",
                                                            "escalation_probability"]
    assert decision.reason_category is Reason.BILLING
    assert decision.sla_seconds == 0


def test_later_matches_are_ignored() -> None:
    matches = [_match("shouting", Tier.RAPID, 5)]

    decision = decide(0.1, 4, matches, THRESHOLDS)

    assert decision.tier is Tier.NONE


def test_urgent_reason_wins_category() -> None:
    matches = [_match("technical_complexity", Tier.RAPID, 0, Reason.TECHNICAL),
               _match("urgent_keyword", Tier.IMMEDIATE, 2, Reason.URGENT)]

    decision = decide(0.1, 2, matches, THRESHOLDS)

    assert decision.reason_category is Reason.URGENT


def test_decision_serialises_to_plain_json() -> None:
    import json

    matches = [_match("shouting", Tier.RAPID, 0)]
    payload = decide(0.7, 0, matches, THRESHOLDS).to_dict()

    assert json.loads(json.dumps(payload))["tier"] == "rapid"
    assert payload["reasons"][0]["evidence"]["span"] == [0, 1]


@pytest.mark.parametrize(
    ("escalation", "prepare", "message"),
    [(1.2, 0.3, "'escalation' is 1.2"), (0.5, 0.7, "prepare threshold 0.7 is above")],
)
def test_invalid_thresholds_rejected(escalation: float, prepare: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionThresholds(escalation=escalation, prepare=prepare)
