"""Tests of the escalation rules, the default policy and negation-aware keyword matching."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.errors import PolicyError
from serving.keywords import KeywordMatcher, phrase_pattern
from serving.rules import (
    DEFAULT_POLICY_PATH,
    KEYWORD_RULES,
    RULE_IDS,
    RULE_TIERS,
    Policy,
    RuleMatch,
    RuleState,
    load_policy,
    match_conversation,
    match_turn,
    policy_from_dict,
)
from serving.schema import Conversation, Role
from serving.tiers import Reason, Tier

REPOSITORY = Path(__file__).resolve().parents[2]
SGD_CORPUS = REPOSITORY / "data" / "raw" / "uss" / "SGD.txt.gz"

START = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def default_policy_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    return data


def policy_with(changes: dict[str, Any]) -> Policy:
    """Return the default policy with dotted keys ("rapid.shouting.enabled") replaced."""
    data = default_policy_data()
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return policy_from_dict(data)


def customer(text: str, **fields: Any) -> dict[str, Any]:
    return {"role": "customer", "text": text, **fields}


def assistant(text: str = "Here is what I found for you.", **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "text": text, **fields}


def conversation(*turns: dict[str, Any], **fields: Any) -> Conversation:
    return Conversation.model_validate({"id": "c1", "turns": list(turns), **fields})


def fired_at(matches: list[RuleMatch], rule: str) -> list[int]:
    """Return the turn indices at which `rule` fired."""
    return [match.turn_index for match in matches if match.rule == rule]


def customer_rules(text: str, policy: Policy) -> set[str]:
    """Return the rules that fire on a single customer message."""
    return {match.rule for match in match_conversation(conversation(customer(text)), policy)}


def assistant_rules(policy: Policy, *turns: dict[str, Any]) -> list[RuleMatch]:
    return match_conversation(conversation(*turns), policy)


# ---------------------------------------------------------------------------------------------
# Policy file and structure
# ---------------------------------------------------------------------------------------------


def test_default_policy_loads(policy: Policy) -> None:
    assert policy.immediate.low_confidence.threshold == 0.60


def test_default_policy_thresholds_are_null(policy: Policy) -> None:
    assert policy.thresholds.escalation is None
    assert policy.thresholds.prepare is None


def test_policy_thresholds_override_is_exposed() -> None:
    custom = policy_with({"thresholds": {"escalation": 0.7, "prepare": 0.4}})
    assert custom.thresholds.escalation == 0.7
    assert custom.thresholds.prepare == 0.4


def test_policy_sections_list_every_rule_id(policy: Policy) -> None:
    section_keys = (set(policy.immediate.model_fields) | set(policy.rapid.model_fields)
                    | set(policy.scheduled.model_fields))
    assert section_keys == set(RULE_IDS)


@pytest.mark.parametrize("rule", RULE_IDS)
def test_policy_rule_sits_in_its_tier_section(policy: Policy, rule: str) -> None:
    section = {Tier.IMMEDIATE: policy.immediate, Tier.RAPID: policy.rapid,
               Tier.SCHEDULED: policy.scheduled}[RULE_TIERS[rule]]
    assert rule in type(section).model_fields


def test_policy_rule_unknown_id_raises(policy: Policy) -> None:
    with pytest.raises(KeyError, match="unknown rule id 'nope'"):
        policy.rule("nope")


def test_load_policy_accepts_path_string(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_policy(str(path)).version == 1


# ---------------------------------------------------------------------------------------------
# Policy validation errors
# ---------------------------------------------------------------------------------------------


def test_policy_threshold_out_of_range() -> None:
    with pytest.raises(PolicyError) as raised:
        policy_with({"immediate.low_confidence.threshold": 1.7})
    message = str(raised.value)
    assert "'immediate.low_confidence.threshold'" in message
    assert "1.7 is not in [0, 1]" in message


def test_policy_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(PolicyError) as raised:
        policy_with({"immediate.low_confidnce": {"enabled": True}})
    message = str(raised.value)
    assert "unknown key 'immediate.low_confidnce'" in message
    assert "low_confidence" in message.split("allowed keys here:")[1]


def test_policy_unknown_top_level_key_rejected() -> None:
    with pytest.raises(PolicyError, match="unknown key 'tresholds'"):
        policy_with({"tresholds": {}})


def test_policy_wrong_type_named() -> None:
    with pytest.raises(PolicyError) as raised:
        policy_with({"rapid.shouting.min_words": "three"})
    message = str(raised.value)
    assert "'rapid.shouting.min_words'" in message
    assert "'three' is invalid" in message


def test_policy_string_boolean_rejected() -> None:
    with pytest.raises(PolicyError, match=r"'immediate\.no_kb_results\.enabled': 'no' is invalid"):
        policy_with({"immediate.no_kb_results.enabled": "no"})


def test_policy_missing_key_named() -> None:
    data = default_policy_data()
    del data["scheduled"]["low_csat"]["below"]
    with pytest.raises(PolicyError, match="key 'scheduled.low_csat.below' is missing"):
        policy_from_dict(data)


def test_policy_bad_phrase_names_list_index() -> None:
    keywords = default_policy_data()["rapid"]["human_request"]["keywords"] + ["maybe? human"]
    with pytest.raises(PolicyError) as raised:
        policy_with({"rapid.human_request.keywords": keywords})
    message = str(raised.value)
    assert f"'rapid.human_request.keywords[{len(keywords) - 1}]'" in message
    assert "'maybe? human'" in message


def test_policy_unknown_account_flag_lists_allowed() -> None:
    with pytest.raises(PolicyError) as raised:
        policy_with({"scheduled.account_flag.flags": ["vip", "gold"]})
    message = str(raised.value)
    assert "'scheduled.account_flag.flags[1]': 'gold'" in message
    assert "'past_due', 'vip' or 'enterprise'" in message


def test_policy_prepare_above_escalation_rejected() -> None:
    with pytest.raises(PolicyError, match="prepare 0.8 is above escalation 0.5"):
        policy_with({"thresholds": {"escalation": 0.5, "prepare": 0.8}})


def test_policy_every_problem_listed() -> None:
    with pytest.raises(PolicyError) as raised:
        policy_with({"immediate.low_confidence.threshold": -1, "rapid.shouting.min_words": 0})
    message = str(raised.value)
    assert "immediate.low_confidence.threshold" in message
    assert "rapid.shouting.min_words" in message


def test_policy_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(PolicyError, match="top level is a list"):
        policy_from_dict(["version", 1])


def test_load_policy_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    message = str(raised.value)
    assert str(path) in message
    assert "file not found" in message


def test_load_policy_bad_yaml_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nimmediate: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    message = str(raised.value)
    assert str(path) in message
    assert "invalid YAML" in message
    assert "line 3" in message


def test_load_policy_empty_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n", encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    message = str(raised.value)
    assert str(path) in message
    assert "file is empty" in message


def test_load_policy_duplicate_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "duplicate.yaml"
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8") + "\nversion: 1\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match="duplicate key 'version'"):
        load_policy(path)


def test_load_policy_file_error_names_key(tmp_path: Path) -> None:
    data = default_policy_data()
    data["rapid"]["confidence_drop"]["min_drop"] = 2.5
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    message = str(raised.value)
    assert message.startswith(f"policy file {path}: key 'rapid.confidence_drop.min_drop'")
    assert "2.5 is not in [0, 1]" in message


# ---------------------------------------------------------------------------------------------
# Assistant-side rules
# ---------------------------------------------------------------------------------------------


def test_low_confidence_fires(policy: Policy) -> None:
    matches = assistant_rules(policy, customer("Where is my parcel?"), assistant(confidence=0.42))
    assert fired_at(matches, "low_confidence") == [1]


def test_low_confidence_description_and_values(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant(confidence=0.42))
    match = next(match for match in matches if match.rule == "low_confidence")
    assert match.description == "assistant confidence 0.42 is below 0.60"
    assert match.values == {"confidence": 0.42, "threshold": 0.60}
    assert match.tier is Tier.IMMEDIATE


def test_low_confidence_at_threshold_does_not_fire(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant(confidence=0.60))
    assert fired_at(matches, "low_confidence") == []


def test_consecutive_low_confidence_fires_on_third(policy: Policy) -> None:
    matches = assistant_rules(
        policy,
        customer("My invoice looks odd."), assistant(confidence=0.65),
        customer("Still odd."), assistant(confidence=0.68),
        customer("Anything else?"), assistant(confidence=0.69),
    )
    assert fired_at(matches, "consecutive_low_confidence") == [5]


def test_consecutive_low_confidence_run_broken_does_not_fire(policy: Policy) -> None:
    matches = assistant_rules(
        policy,
        assistant(confidence=0.65), assistant(confidence=0.75),
        assistant(confidence=0.65), assistant(confidence=0.65),
    )
    assert fired_at(matches, "consecutive_low_confidence") == []


def test_consecutive_low_confidence_skips_unknown_confidence(policy: Policy) -> None:
    matches = assistant_rules(
        policy, assistant(confidence=0.65), assistant(), assistant(confidence=0.65),
        assistant(confidence=0.66),
    )
    assert fired_at(matches, "consecutive_low_confidence") == [3]


def test_no_kb_results_fires(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant(kb_results=0, confidence=0.9))
    assert fired_at(matches, "no_kb_results") == [0]


def test_no_kb_results_with_results_does_not_fire(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant(kb_results=3, confidence=0.9))
    assert fired_at(matches, "no_kb_results") == []


def test_confidence_drop_fires(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant(confidence=0.95), assistant(confidence=0.75))
    assert fired_at(matches, "confidence_drop") == [1]


def test_confidence_drop_exact_limit_fires(policy: Policy) -> None:
    # 0.70 - 0.50 is 0.19999999999999996 in binary floating point.
    matches = assistant_rules(policy, assistant(confidence=0.70), assistant(confidence=0.50))
    assert fired_at(matches, "confidence_drop") == [1]


def test_confidence_drop_small_does_not_fire(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant(confidence=0.95), assistant(confidence=0.80))
    assert fired_at(matches, "confidence_drop") == []


def test_confidence_drop_measured_from_max(policy: Policy) -> None:
    matches = assistant_rules(
        policy, assistant(confidence=0.80), assistant(confidence=0.95),
        assistant(confidence=0.85), assistant(confidence=0.74),
    )
    match = next(match for match in matches if match.rule == "confidence_drop")
    assert match.turn_index == 3
    assert match.values["max_confidence"] == 0.95


@pytest.mark.parametrize("answer", [
    "I'm not sure about that.",
    "I don't know the answer to that one.",
    "Sorry, I can't help with that.",
    "I don’t have that information.",
    "I am unable to help with refunds.",
])
def test_assistant_uncertain_fires_on_second_answer(policy: Policy, answer: str) -> None:
    matches = assistant_rules(
        policy, customer("How do I export my data?"), assistant(answer),
        customer("Can you check again?"), assistant(answer),
    )
    assert fired_at(matches, "assistant_uncertain") == [3]


def test_assistant_uncertain_single_answer_does_not_fire(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant("I'm not sure."), assistant("Here it is."))
    assert fired_at(matches, "assistant_uncertain") == []


def test_assistant_uncertain_ignores_customer_turns(policy: Policy) -> None:
    matches = assistant_rules(policy, customer("I don't know my order number."),
                              customer("I'm not sure where it is."))
    assert fired_at(matches, "assistant_uncertain") == []


# ---------------------------------------------------------------------------------------------
# Customer keyword rules
# ---------------------------------------------------------------------------------------------


FIRING_MESSAGES: list[tuple[str, str]] = [
    ("urgent_keyword", "This is urgent, please help."),
    ("urgent_keyword", "We have an emergency with the checkout."),
    ("urgent_keyword", "Critical: our store is down."),
    ("billing_dispute", "I want a refund for this order."),
    ("billing_dispute", "I was charged twice for one subscription."),
    ("billing_dispute", "You double charged my card."),
    ("billing_dispute", "I will file a chargeback with my bank."),
    ("billing_dispute", "I want to dispute the charge from May."),
    ("billing_dispute", "You overcharged me by 20 euros."),
    ("billing_dispute", "I just want my money back."),
    ("frustration_language", "This service is terrible."),
    ("frustration_language", "Your app is useless."),
    ("frustration_language", "I'm fed up with this."),
    ("frustration_language", "The login is not working again."),
    ("frustration_language", "This is ridiculous."),
    ("technical_complexity", "I get error code 0x80070005 on install."),
    ("technical_complexity", "Your API returns a 500 error."),
    ("technical_complexity", "The app crashes on startup."),
    ("technical_complexity", "Here is the stack trace from the log."),
    ("technical_complexity", "The Salesforce integration stopped syncing."),
    ("technical_complexity", "The upload timed out twice."),
    ("human_request", "Can I talk to a human?"),
    ("human_request", "Let me speak to a manager."),
    ("human_request", "I want a real person."),
    ("human_request", "Please transfer me to an agent."),
    ("human_request", "Put me through to a supervisor now."),
    ("human_request", "Is there a human I can chat with?"),
]


@pytest.mark.parametrize(("rule", "text"), FIRING_MESSAGES)
def test_keyword_rule_fires(policy: Policy, rule: str, text: str) -> None:
    assert rule in customer_rules(text, policy)


NON_FIRING_MESSAGES: list[tuple[str, str]] = [
    ("urgent_keyword", "He read the report uncritically."),
    ("urgent_keyword", "Thanks, that answers my question."),
    ("billing_dispute", "Is this ticket non-refundable?"),
    ("billing_dispute", "How do I charge my phone faster?"),
    ("frustration_language", "Everything works great now, thanks."),
    ("technical_complexity", "I need rapid delivery to Paris."),
    ("technical_complexity", "Happy birthday to my therapist."),
    ("human_request", "Are you a human?"),
    ("human_request", "My password manager lost the login."),
    ("human_request", "The agent of change is you."),
]


@pytest.mark.parametrize(("rule", "text"), NON_FIRING_MESSAGES)
def test_keyword_rule_does_not_fire(policy: Policy, rule: str, text: str) -> None:
    assert rule not in customer_rules(text, policy)


def test_keyword_rules_ignore_assistant_turns(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant("This is urgent: a refund is on its way.",
                                                confidence=0.9))
    assert {match.rule for match in matches} == set()


def test_keyword_rule_fires_on_each_customer_turn(policy: Policy) -> None:
    matches = assistant_rules(policy, customer("This is terrible."), assistant(confidence=0.9),
                              customer("Still terrible."))
    assert fired_at(matches, "frustration_language") == [0, 2]


@pytest.mark.parametrize("text", ["URGENT", "Urgent", "uRgEnT", "this is URGENT!"])
def test_urgent_keyword_case_insensitive(policy: Policy, text: str) -> None:
    assert "urgent_keyword" in customer_rules(text, policy)


def test_human_request_case_insensitive(policy: Policy) -> None:
    assert "human_request" in customer_rules("SPEAK To A Manager", policy)


@pytest.mark.parametrize("text", ["I was charged   twice", "I was charged\ttwice",
                                  "I was charged\u00a0twice", "talk to  a   human please"])
def test_keyword_extra_whitespace_tolerated(policy: Policy, text: str) -> None:
    assert customer_rules(text, policy) & {"billing_dispute", "human_request"}


def test_keyword_hyphen_between_words_tolerated(policy: Policy) -> None:
    assert "frustration_language" in customer_rules("I'm so fed-up.", policy)


@pytest.mark.parametrize("text", ["It doesn't work.", "It doesn’t work.", "It doesnt work."])
def test_keyword_apostrophe_variants_match(policy: Policy, text: str) -> None:
    assert "frustration_language" in customer_rules(text, policy)


def test_keyword_match_evidence_is_first_hit(policy: Policy) -> None:
    text = "I need a refund, I was charged twice."
    match = next(match for match in match_conversation(conversation(customer(text)), policy)
                 if match.rule == "billing_dispute")
    assert match.matched_text == "refund"
    assert match.span == (9, 15)
    assert match.values == {"keyword": "refund|refunds|refunded|refunding", "hits": 2}
    assert match.reason is Reason.BILLING


# ---------------------------------------------------------------------------------------------
# Negation
# ---------------------------------------------------------------------------------------------


NEGATED_MESSAGES: list[tuple[str, str]] = [
    ("urgent_keyword", "This is not urgent."),
    ("urgent_keyword", "It's not an emergency."),
    ("urgent_keyword", "Nothing critical, just a question."),
    ("human_request", "I don't need a human."),
    ("human_request", "I don’t need a human."),
    ("human_request", "I dont need a human."),
    ("human_request", "No need for a manager."),
    ("human_request", "There is no need to talk to a manager."),
    ("human_request", "I do not want to talk to a human."),
    ("billing_dispute", "I don't want a refund, just the replacement."),
    ("billing_dispute", "A refund is not needed."),
    ("billing_dispute", "Never mind a refund."),
    ("technical_complexity", "The app doesn't crash anymore."),
    ("technical_complexity", "There is no error code shown."),
]


@pytest.mark.parametrize(("rule", "text"), NEGATED_MESSAGES)
def test_keyword_rule_negated_does_not_fire(policy: Policy, rule: str, text: str) -> None:
    assert rule not in customer_rules(text, policy)


@pytest.mark.parametrize(("phrases", "text"), [
    (["need|want for? a|an|the? manager"], "No need for a manager."),
    (["urgent"], "This is not urgent."),
    (["talk to a human"], "I do not want to talk to a human."),
])
def test_matcher_without_negation_finds_phrase(phrases: list[str], text: str) -> None:
    # The negated cases above fail for the negation, not because the phrase misses the text.
    assert KeywordMatcher(phrases).find(text)


def test_negation_does_not_cross_but(policy: Policy) -> None:
    fired = customer_rules("It is not urgent but the app is not working", policy)
    assert "frustration_language" in fired
    assert "urgent_keyword" not in fired


def test_negation_does_not_cross_comma(policy: Policy) -> None:
    assert "urgent_keyword" in customer_rules("Not sure why, this is urgent.", policy)


def test_negation_outside_window_fires(policy: Policy) -> None:
    text = "I did not think this would become urgent."
    assert "urgent_keyword" in customer_rules(text, policy)


def test_negation_phrase_with_own_not_fires(policy: Policy) -> None:
    assert "frustration_language" in customer_rules("The app is not working.", policy)


@pytest.mark.parametrize("text", ["No I want a refund.", "No, I want a refund."])
def test_negation_interjection_no_fires(policy: Policy, text: str) -> None:
    assert "billing_dispute" in customer_rules(text, policy)


def test_human_request_cannot_get_human_fires(policy: Policy) -> None:
    # Design choice: "I can't get a human" is a customer who wants a human and cannot reach
    # one, so "can't get" is a pseudo-cue that does not negate the request.
    assert "human_request" in customer_rules("I can't get a human on the phone.", policy)


def test_human_request_why_cant_fires(policy: Policy) -> None:
    assert "human_request" in customer_rules("Why can't I talk to a real person?", policy)


def test_billing_refund_not_received_fires(policy: Policy) -> None:
    assert "billing_dispute" in customer_rules("I still haven't received my refund.", policy)


def test_assistant_uncertain_not_negation_aware(policy: Policy) -> None:
    matches = assistant_rules(policy, assistant("No I don't know."), assistant("No I don't know."))
    assert fired_at(matches, "assistant_uncertain") == [1]


# ---------------------------------------------------------------------------------------------
# Phrase syntax
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("phrase", "text", "expected"), [
    ("talk to a|an? human", "talk to human", "talk to human"),
    ("talk to a|an? human", "talk to an human", "talk to an human"),
    ("crash*", "it crashed again", "crashed"),
    ("api", "the API is down", "API"),
    ("500 error", "got a 500 error", "500 error"),
])
def test_phrase_syntax_matches(phrase: str, text: str, expected: str) -> None:
    hits = KeywordMatcher([phrase]).find(text)
    assert [hit.text for hit in hits] == [expected]


@pytest.mark.parametrize(("phrase", "text"), [
    ("api", "rapid"),
    ("critical", "uncritically"),
    ("crash*", "the car was in a smash"),
    ("talk to a|an? human", "talk to the human"),
])
def test_phrase_syntax_does_not_match(phrase: str, text: str) -> None:
    assert KeywordMatcher([phrase]).find(text) == []


@pytest.mark.parametrize("phrase", ["", "a||b", "human?", "maybe? human", "cr*sh", "---"])
def test_phrase_syntax_invalid_raises(phrase: str) -> None:
    with pytest.raises(ValueError):
        phrase_pattern(phrase)


def test_keyword_matcher_prefers_longest_overlap() -> None:
    hits = KeywordMatcher(["human", "talk to a human"]).find("please talk to a human")
    assert [hit.phrase for hit in hits] == ["talk to a human"]


# ---------------------------------------------------------------------------------------------
# Shouting
# ---------------------------------------------------------------------------------------------


def test_shouting_fires(policy: Policy) -> None:
    text = "WHY IS THIS STILL BROKEN"
    match = next(match for match in match_conversation(conversation(customer(text)), policy)
                 if match.rule == "shouting")
    assert match.matched_text == "WHY IS THIS STILL BROKEN"
    assert match.values["caps_words"] == 4


@pytest.mark.parametrize("text", [
    "I need my API URL for SSO.",
    "Can I use my USA ATM PIN abroad?",
    "Please HELP me NOW with THIS order.",
    "OK",
    "12345 !!!",
])
def test_shouting_does_not_fire(policy: Policy, text: str) -> None:
    assert "shouting" not in customer_rules(text, policy)


def test_shouting_ratio_is_configurable() -> None:
    relaxed = policy_with({"rapid.shouting.min_upper_ratio": 0.3})
    assert "shouting" in customer_rules("Please HELP me NOW with THIS order.", relaxed)


# ---------------------------------------------------------------------------------------------
# Scheduled rules: time, CSAT and profile
# ---------------------------------------------------------------------------------------------


def timed(role_turn: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {**role_turn, "timestamp": (START + timedelta(seconds=seconds)).isoformat()}


def test_long_unresolved_fires_once(policy: Policy) -> None:
    matches = assistant_rules(
        policy, timed(customer("Hello"), 0), timed(assistant(), 300),
        timed(customer("Still there?"), 601), timed(customer("Hello??"), 900),
    )
    assert fired_at(matches, "long_unresolved") == [2]


def test_long_unresolved_at_limit_does_not_fire(policy: Policy) -> None:
    matches = assistant_rules(policy, timed(customer("Hello"), 0), timed(customer("Hi"), 600))
    assert fired_at(matches, "long_unresolved") == []


def test_long_unresolved_counts_from_started_at(policy: Policy) -> None:
    turns = [timed(customer("Hello"), 500), timed(assistant(), 700)]
    matches = match_conversation(conversation(*turns, started_at=START.isoformat()), policy)
    assert fired_at(matches, "long_unresolved") == [1]


def test_long_unresolved_mixed_timezones(policy: Policy) -> None:
    turns = [customer("Hi", timestamp="2024-05-01T09:00:00"),
             customer("Hi?", timestamp="2024-05-01T09:20:00+00:00")]
    assert fired_at(assistant_rules(policy, *turns), "long_unresolved") == [1]


def test_low_csat_fires(policy: Policy) -> None:
    matches = assistant_rules(policy, customer("Meh.", csat=2))
    assert fired_at(matches, "low_csat") == [0]


def test_low_csat_three_does_not_fire(policy: Policy) -> None:
    matches = assistant_rules(policy, customer("Fine.", csat=3))
    assert fired_at(matches, "low_csat") == []


def test_repeat_customer_fires_at_first_customer_turn(policy: Policy) -> None:
    matches = match_conversation(conversation(
        assistant("Hi, how can I help?"), customer("My order."), customer("Hello?"),
        customer={"previous_escalations": 2},
    ), policy)
    assert fired_at(matches, "repeat_customer") == [1]


def test_repeat_customer_without_history_does_not_fire(policy: Policy) -> None:
    matches = match_conversation(conversation(customer("Hi"), customer={"customer_id": "u1"}),
                                 policy)
    assert fired_at(matches, "repeat_customer") == []


@pytest.mark.parametrize("flag", ["vip", "enterprise", "past_due"])
def test_account_flag_fires(policy: Policy, flag: str) -> None:
    matches = match_conversation(conversation(customer("Hi"), customer={flag: True}), policy)
    match = next(match for match in matches if match.rule == "account_flag")
    assert match.values == {"flags": flag}
    assert match.reason is Reason.ACCOUNT


def test_account_flag_lists_every_flag(policy: Policy) -> None:
    matches = match_conversation(
        conversation(customer("Hi"), customer={"vip": True, "past_due": True}), policy)
    assert [match.values["flags"] for match in matches] == ["past_due,vip"]


def test_account_flag_plain_account_does_not_fire(policy: Policy) -> None:
    matches = match_conversation(conversation(customer("Hi"), customer={"plan": "basic"}),
                                 policy)
    assert fired_at(matches, "account_flag") == []


def test_account_flag_not_configured_does_not_fire() -> None:
    only_vip = policy_with({"scheduled.account_flag.flags": ["vip"]})
    matches = match_conversation(conversation(customer("Hi"), customer={"past_due": True}),
                                 only_vip)
    assert fired_at(matches, "account_flag") == []


def test_region_default_empty_does_not_fire(policy: Policy) -> None:
    matches = match_conversation(conversation(customer("Hi"), customer={"region": "EU"}), policy)
    assert fired_at(matches, "region") == []


def test_region_configured_fires_case_insensitive() -> None:
    regional = policy_with({"scheduled.region.regions": ["EU", "APAC"]})
    matches = match_conversation(conversation(customer("Hi"), customer={"region": "eu"}),
                                 regional)
    assert fired_at(matches, "region") == [0]


def test_profile_rules_wait_for_customer_turn(policy: Policy) -> None:
    matches = match_conversation(conversation(assistant("Hello!"), customer={"vip": True}),
                                 policy)
    assert matches == []


# ---------------------------------------------------------------------------------------------
# Disabled rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "turns", "profile"), [
    ("urgent_keyword", [customer("This is urgent!")], None),
    ("low_confidence", [assistant(confidence=0.1)], None),
    ("no_kb_results", [assistant(kb_results=0)], None),
    ("shouting", [customer("WHY IS THIS BROKEN")], None),
    ("assistant_uncertain", [assistant("I'm not sure."), assistant("I'm not sure.")], None),
    ("long_unresolved", [timed(customer("Hi"), 0), timed(customer("Hi"), 900)], None),
    ("account_flag", [customer("Hi")], {"vip": True}),
])
def test_disabled_rule_does_not_fire(
    rule: str, turns: list[dict[str, Any]], profile: dict[str, Any] | None
) -> None:
    section = RULE_TIERS[rule].value
    disabled = policy_with({f"{section}.{rule}.enabled": False})
    enabled = load_policy()
    example = conversation(*turns, customer=profile)
    assert rule in {match.rule for match in match_conversation(example, enabled)}
    assert rule not in {match.rule for match in match_conversation(example, disabled)}


# ---------------------------------------------------------------------------------------------
# Matches, state and incremental use
# ---------------------------------------------------------------------------------------------


RICH_TURNS = [
    timed(customer("Hi, my API integration is not working and this is urgent!"), 0),
    timed(assistant("I'm not sure what is wrong.", confidence=0.9, kb_results=0), 20),
    timed(customer("I was charged twice. I want to talk to a human."), 60),
    timed(assistant("I don't know, sorry.", confidence=0.55), 90),
    timed(customer("THIS IS RIDICULOUS, GET ME A MANAGER", csat=1), 700),
    timed(assistant("Let me look.", confidence=0.5), 720),
]


def rich_conversation() -> Conversation:
    return conversation(*RICH_TURNS, customer={"vip": True, "previous_escalations": 1,
                                               "region": "EU"})


def test_match_order_follows_rule_ids(policy: Policy) -> None:
    matches = match_conversation(rich_conversation(), policy)
    positions = [(match.turn_index, RULE_IDS.index(match.rule)) for match in matches]
    assert positions == sorted(positions)


def test_match_to_dict_round_trips(policy: Policy) -> None:
    for match in match_conversation(rich_conversation(), policy):
        encoded = json.loads(json.dumps(match.to_dict()))
        assert RuleMatch.from_dict(encoded) == match


def test_match_span_slices_turn_text(policy: Policy) -> None:
    example = rich_conversation()
    matches = match_conversation(example, policy)
    with_span = [match for match in matches if match.span is not None]
    assert len(with_span) >= 6
    for match in with_span:
        assert match.span is not None
        start, end = match.span
        assert example.turns[match.turn_index].text[start:end] == match.matched_text


def test_match_tiers_follow_rule_table(policy: Policy) -> None:
    for match in match_conversation(rich_conversation(), policy):
        assert match.tier is RULE_TIERS[match.rule]


def test_match_conversation_is_causal_on_prefixes(policy: Policy) -> None:
    full = rich_conversation()
    matches = match_conversation(full, policy)
    for length in range(1, len(full.turns) + 1):
        prefix = full.model_copy(update={"turns": full.turns[:length]})
        expected = [match for match in matches if match.turn_index < length]
        assert match_conversation(prefix, policy) == expected


def test_rule_state_round_trip_gives_same_matches(policy: Policy) -> None:
    full = rich_conversation()
    matches = match_conversation(full, policy)
    for split in range(len(full.turns) + 1):
        state = RuleState()
        head = [match for index in range(split) for match in match_turn(full, index, state,
                                                                           policy)]
        stored = json.loads(json.dumps(state.to_dict()))
        tail = match_conversation(full, policy, RuleState.from_dict(stored))
        assert head + tail == matches


def test_rule_state_to_dict_uses_json_types(policy: Policy) -> None:
    state = RuleState()
    match_conversation(rich_conversation(), policy, state)
    stored = state.to_dict()
    assert json.loads(json.dumps(stored)) == stored
    assert stored["fired_once"] == ["long_unresolved"]
    assert stored["uncertain_answers"] == 2


def test_rule_state_from_dict_invalid_raises() -> None:
    with pytest.raises(ValueError, match="consecutive_low_confidence"):
        RuleState.from_dict({"consecutive_low_confidence": -1})


def test_rule_state_from_dict_unknown_key_raises() -> None:
    with pytest.raises(ValueError, match="rule state is invalid"):
        RuleState.from_dict({"turns": 3})


def test_match_turn_out_of_order_raises(policy: Policy) -> None:
    example = rich_conversation()
    with pytest.raises(ValueError, match="next turn to evaluate is 0"):
        match_turn(example, 2, RuleState(), policy)


def test_match_turn_out_of_range_raises(policy: Policy) -> None:
    example = rich_conversation()
    with pytest.raises(ValueError, match="out of range"):
        match_turn(example, len(example.turns), RuleState(), policy)


def test_match_conversation_resumes_from_state(policy: Policy) -> None:
    full = rich_conversation()
    state = RuleState()
    first = match_conversation(full.model_copy(update={"turns": full.turns[:3]}), policy, state)
    rest = match_conversation(full, policy, state)
    assert first + rest == match_conversation(full, policy)


# ---------------------------------------------------------------------------------------------
# Properties on generated conversations
# ---------------------------------------------------------------------------------------------


FRAGMENTS = [
    "urgent", "not urgent", "refund", "I don't want a refund", "charged twice", "terrible",
    "not working", "API", "error code", "talk to a human", "I don't need a human",
    "I can't get a human", "I'm not sure", "I don't know", "WHY IS THIS BROKEN", "thanks",
    "but", ",", ".", "no need", "rapid", "uncritically", "’", "'", "  ", "\n",
]

fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=8).map(" ".join)
message_text = st.one_of(st.text(max_size=200), fragment_text)


@st.composite
def generated_conversations(draw: st.DrawFn) -> Conversation:
    turns: list[dict[str, Any]] = []
    seconds = 0
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        role = draw(st.sampled_from([Role.CUSTOMER, Role.ASSISTANT, Role.AGENT]))
        turn: dict[str, Any] = {"role": role.value, "text": draw(message_text)}
        seconds += draw(st.integers(min_value=0, max_value=400))
        if draw(st.booleans()):
            turn["timestamp"] = (START + timedelta(seconds=seconds)).isoformat()
        if role is Role.ASSISTANT:
            turn["confidence"] = draw(st.none() | st.floats(min_value=0.0, max_value=1.0))
            turn["kb_results"] = draw(st.none() | st.integers(min_value=0, max_value=3))
        if role is Role.CUSTOMER:
            turn["csat"] = draw(st.none() | st.integers(min_value=1, max_value=5))
        turns.append(turn)
    profile = draw(st.none() | st.fixed_dictionaries({
        "vip": st.booleans(), "past_due": st.booleans(),
        "previous_escalations": st.integers(min_value=0, max_value=3),
    }))
    return conversation(*turns, customer=profile)


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY_SETTINGS
@given(text=message_text)
def test_matcher_random_text_spans_inside_text(policy: Policy, text: str) -> None:
    for rule in KEYWORD_RULES:
        for hit in policy.matcher(rule).find(text):
            assert 0 <= hit.start < hit.end <= len(text)
            assert text[hit.start:hit.end] == hit.text


@PROPERTY_SETTINGS
@given(example=generated_conversations())
def test_generated_conversation_spans_slice_text(policy: Policy, example: Conversation) -> None:
    for match in match_conversation(example, policy):
        if match.span is not None:
            start, end = match.span
            assert example.turns[match.turn_index].text[start:end] == match.matched_text


@PROPERTY_SETTINGS
@given(example=generated_conversations())
def test_generated_conversation_is_causal(policy: Policy, example: Conversation) -> None:
    matches = match_conversation(example, policy)
    for length in range(1, len(example.turns)):
        prefix = example.model_copy(update={"turns": example.turns[:length]})
        expected = [match for match in matches if match.turn_index < length]
        assert match_conversation(prefix, policy) == expected


@PROPERTY_SETTINGS
@given(example=generated_conversations(), split=st.integers(min_value=0, max_value=8))
def test_generated_state_round_trip(policy: Policy, example: Conversation, split: int) -> None:
    split = min(split, len(example.turns))
    matches = match_conversation(example, policy)
    state = RuleState()
    head = [match for index in range(split) for match in match_turn(example, index, state, policy)]
    restored = RuleState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert head + match_conversation(example, policy, restored) == matches


# ---------------------------------------------------------------------------------------------
# Real dialogues
# ---------------------------------------------------------------------------------------------


def read_sgd_dialogues(limit: int) -> list[Conversation]:
    """Read the first `limit` dialogues of the USS SGD corpus as conversations.

    The file has one "ROLE<TAB>text<TAB>act<TAB>scores" line per turn, a blank line between
    dialogues, and a closing "USER<TAB>OVERALL" line with the dialogue rating.
    """
    dialogues: list[Conversation] = []
    turns: list[dict[str, Any]] = []
    with gzip.open(SGD_CORPUS, "rt", encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                if turns:
                    dialogues.append(conversation(*turns).model_copy(
                        update={"id": f"sgd-{len(dialogues)}"}))
                    turns = []
                if len(dialogues) >= limit:
                    break
                continue
            if fields[1] == "OVERALL":
                continue
            role = "customer" if fields[0] == "USER" else "assistant"
            turns.append({"role": role, "text": fields[1]})
    return dialogues


@pytest.fixture(scope="module")
def sgd_dialogues() -> list[Conversation]:
    return read_sgd_dialogues(limit=300)


def test_sgd_dialogues_read(sgd_dialogues: list[Conversation]) -> None:
    assert len(sgd_dialogues) == 300


def test_sgd_matches_fire_on_the_right_role(
    policy: Policy, sgd_dialogues: list[Conversation]
) -> None:
    customer_only = {"urgent_keyword", "billing_dispute", "frustration_language", "shouting",
                     "technical_complexity", "human_request"}
    for dialogue in sgd_dialogues:
        for match in match_conversation(dialogue, policy):
            role = dialogue.turns[match.turn_index].role
            if match.rule in customer_only:
                assert role is Role.CUSTOMER, (dialogue.id, match)
            if match.rule == "assistant_uncertain":
                assert role is Role.ASSISTANT, (dialogue.id, match)


def test_sgd_spans_slice_turn_text(policy: Policy, sgd_dialogues: list[Conversation]) -> None:
    for dialogue in sgd_dialogues:
        for match in match_conversation(dialogue, policy):
            if match.span is not None:
                start, end = match.span
                assert dialogue.turns[match.turn_index].text[start:end] == match.matched_text


def test_sgd_polite_dialogues_rarely_escalate(
    policy: Policy, sgd_dialogues: list[Conversation]
) -> None:
    # SGD dialogues are cooperative bookings and lookups. A policy that escalated many of them
    # on keywords alone would flood the human queue.
    escalated = [dialogue.id for dialogue in sgd_dialogues
                 if match_conversation(dialogue, policy)]
    assert len(escalated) <= len(sgd_dialogues) * 0.05, escalated


def test_policy_matchers_are_compiled_once(policy: Policy) -> None:
    assert policy.matcher("urgent_keyword") is policy.matcher("urgent_keyword")


def test_policy_from_dict_does_not_mutate_input() -> None:
    data = default_policy_data()
    snapshot = copy.deepcopy(data)
    policy_from_dict(data)
    assert data == snapshot
