"""Tests of reason classification on the real int8 encoder, the real rules and reasons.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.encoder import Encoder
from serving.errors import ReasonConfigError
from serving.reasons import (
    DEFAULT_REASONS_PATH,
    TOPICS,
    ReasonClassifier,
    load_reason_config,
    load_reason_descriptions,
    reason_config_from_dict,
)
from serving.rules import Policy, RuleMatch, load_policy, match_conversation
from serving.schema import parse_conversation
from serving.tiers import Reason, Tier
from serving.token_encoder import TokenEncoder


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path) -> Encoder:
    return Encoder(encoder_dir / "encoder.int8.onnx", encoder_dir / "tokenizer.json",
                   batch_size=1)


@pytest.fixture(scope="module")
def classifier(encoder: Encoder) -> ReasonClassifier:
    return ReasonClassifier.from_config(load_reason_config(), encoder.encode)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def rule_matches(policy: Policy, text: str, customer: dict[str, Any] | None = None
                 ) -> list[RuleMatch]:
    conversation = parse_conversation({
        "id": "c1",
        "customer": customer,
        "turns": [{"role": "customer", "text": text}],
    })
    return match_conversation(conversation, policy)


# ---------------------------------------------------------------------------- similarity


@pytest.mark.parametrize(("text", "expected"), [
    ("my invoice shows a double charge", Reason.BILLING),
    ("the app crashes when I upload a file", Reason.TECHNICAL),
    ("I want to upgrade to the enterprise plan, what does it cost", Reason.SALES),
    ("I need to change the email on my account", Reason.ACCOUNT),
])
def test_similarity_picks_topic(classifier: ReasonClassifier, encoder: Encoder, text: str,
                                expected: Reason) -> None:
    assessment = classifier.classify([], encoder.encode([text]))

    assert assessment.reason is expected
    assert assessment.source == "similarity"
    assert assessment.urgent is False


def test_similarity_below_minimum_is_general(classifier: ReasonClassifier,
                                             encoder: Encoder) -> None:
    assessment = classifier.classify([], encoder.encode(["what's the weather like"]))

    assert assessment.reason is Reason.GENERAL
    assert assessment.source == "default"
    assert "below the minimum 0.25" in assessment.evidence[0]


def test_scores_cover_every_reason(classifier: ReasonClassifier, encoder: Encoder) -> None:
    assessment = classifier.classify([], encoder.encode(["my invoice shows a double charge"]))

    assert set(assessment.scores) == {reason.value for reason in Reason}
    assert all(-1.0 <= score <= 1.0 for score in assessment.scores.values())
    assert max(assessment.scores, key=assessment.scores.__getitem__) == "billing"


def test_several_messages_are_averaged(classifier: ReasonClassifier, encoder: Encoder) -> None:
    messages = ["hello", "I need to change the email on my account", "thanks"]

    assessment = classifier.classify([], encoder.encode(messages))

    assert assessment.reason is Reason.ACCOUNT


def test_urgent_from_similarity(classifier: ReasonClassifier, encoder: Encoder) -> None:
    text = "production is down and we are losing money every minute"

    assessment = classifier.classify([], encoder.encode([text]))

    assert assessment.urgent is True
    assert assessment.evidence[-1].startswith("urgent: close to the urgent descriptions")


def test_no_messages_and_no_rules_is_general(classifier: ReasonClassifier) -> None:
    assessment = classifier.classify([], np.empty((0, classifier.dimension), np.float32))

    assert assessment.reason is Reason.GENERAL
    assert assessment.source == "default"
    assert assessment.scores == {}


def test_flat_empty_embeddings_are_no_messages(classifier: ReasonClassifier) -> None:
    # The service passes the stored previous embeddings, which are a flat empty array when an
    # assistant turn escalates before the customer has written anything.
    assessment = classifier.classify([], np.asarray([], dtype=np.float32))

    assert assessment.reason is Reason.GENERAL
    assert assessment.scores == {}


def test_high_minimum_forces_general(encoder: Encoder) -> None:
    strict = ReasonClassifier(load_reason_descriptions(), encoder.encode, min_similarity=0.95)

    assessment = strict.classify([], encoder.encode(["my invoice shows a double charge"]))

    assert assessment.reason is Reason.GENERAL
    assert assessment.source == "default"


def test_description_scores_its_own_reason_highest(classifier: ReasonClassifier,
                                                   encoder: Encoder) -> None:
    descriptions = load_reason_descriptions()

    for topic in TOPICS:
        scores = classifier.similarities(encoder.encode([descriptions[topic][0]]))
        best = max(TOPICS, key=scores.__getitem__)
        assert best is topic, f"{descriptions[topic][0]!r} is closest to {best.value}"


def test_wrong_dimension_raises(classifier: ReasonClassifier) -> None:
    with pytest.raises(ValueError, match=r"expected \[messages, 384\]"):
        classifier.classify([], np.ones((1, 10), np.float32))


def test_non_finite_embedding_raises(classifier: ReasonClassifier) -> None:
    embeddings = np.full((1, classifier.dimension), np.nan, np.float32)

    with pytest.raises(ValueError, match="NaN or infinite"):
        classifier.classify([], embeddings)


# ----------------------------------------------------------------------------- rules


def test_rule_hint_wins_over_similarity(classifier: ReasonClassifier, encoder: Encoder,
                                        policy: Policy) -> None:
    text = "what does the premium plan cost?"
    matches = rule_matches(policy, text, customer={"past_due": True})

    assessment = classifier.classify(matches, encoder.encode([text]))

    assert assessment.reason is Reason.ACCOUNT
    assert assessment.source == "rule"
    assert assessment.scores["sales"] > assessment.scores["account"]


def test_most_urgent_rule_topic_wins(classifier: ReasonClassifier, encoder: Encoder,
                                     policy: Policy) -> None:
    text = "I want a refund, the app keeps crashing"
    matches = rule_matches(policy, text)

    assessment = classifier.classify(matches, encoder.encode([text]))

    assert assessment.reason is Reason.BILLING
    assert assessment.evidence[0].startswith("billing: rule billing_dispute at turn 0")


def test_equal_tier_hints_broken_by_similarity(classifier: ReasonClassifier,
                                               encoder: Encoder) -> None:
    matches = [
        RuleMatch(rule="billing_dispute", tier=Tier.IMMEDIATE, reason=Reason.BILLING,
                  turn_index=0, description="billing-dispute language"),
        RuleMatch(rule="technical_complexity", tier=Tier.IMMEDIATE, reason=Reason.TECHNICAL,
                  turn_index=1, description="technical-complexity cue"),
    ]

    assessment = classifier.classify(
        matches, encoder.encode(["the app crashes when I upload a file"])
    )

    assert assessment.reason is Reason.TECHNICAL


def test_urgent_rule_combines_with_topic(classifier: ReasonClassifier, encoder: Encoder,
                                         policy: Policy) -> None:
    text = "Urgent: I need to change the email on my account"
    matches = rule_matches(policy, text)

    assessment = classifier.classify(matches, encoder.encode([text]))

    assert assessment.reason is Reason.ACCOUNT
    assert assessment.urgent is True
    assert assessment.source == "similarity"
    assert assessment.evidence[-1].startswith("urgent: rule urgent_keyword at turn 0")


def test_urgent_rule_and_billing_rule_together(classifier: ReasonClassifier,
                                               encoder: Encoder, policy: Policy) -> None:
    text = "This is urgent, my invoice shows a double charge"
    matches = rule_matches(policy, text)

    assessment = classifier.classify(matches, encoder.encode([text]))

    assert assessment.reason is Reason.BILLING
    assert assessment.urgent is True
    assert assessment.source == "rule"


def test_to_dict_uses_plain_types(classifier: ReasonClassifier, encoder: Encoder) -> None:
    payload = classifier.classify([], encoder.encode(["I forgot my username"])).to_dict()

    assert payload["reason"] == "account"
    assert payload["source"] == "similarity"
    assert isinstance(payload["scores"]["account"], float)


# ---------------------------------------------------------------------------- config


def test_default_config_has_every_topic() -> None:
    config = load_reason_config()

    assert all(config.descriptions[topic] for topic in TOPICS)
    assert config.min_similarity == 0.25


def test_unknown_reason_key_lists_allowed() -> None:
    with pytest.raises(ReasonConfigError,
                       match="key 'descriptions.refunds': unknown reason 'refunds'; allowed: "
                             "technical, billing"):
        reason_config_from_dict({"descriptions": {"refunds": ["give me my money back"]}})


def test_missing_topic_rejected() -> None:
    descriptions = {topic.value: ["something"] for topic in TOPICS if topic is not Reason.SALES}

    with pytest.raises(ReasonConfigError, match="descriptions.sales is missing or empty"):
        reason_config_from_dict({"descriptions": descriptions})


def test_threshold_out_of_range_rejected() -> None:
    data = {"min_similarity": 1.5,
            "descriptions": {topic.value: ["something"] for topic in TOPICS}}

    with pytest.raises(ReasonConfigError, match="key 'min_similarity': 1.5 is invalid"):
        reason_config_from_dict(data)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ReasonConfigError, match="file not found"):
        load_reason_config(tmp_path / "absent.yaml")


def test_default_path_is_bundled() -> None:
    assert DEFAULT_REASONS_PATH.is_file()


def test_classifier_rejects_missing_topic(encoder: Encoder) -> None:
    descriptions = load_reason_descriptions()
    del descriptions[Reason.GENERAL]

    with pytest.raises(ReasonConfigError, match="descriptions.general is missing or empty"):
        ReasonClassifier(descriptions, encoder.encode)


def test_descriptions_outside_the_vocabulary_leave_rules_only() -> None:
    # A token encoder whose vocabulary is the single word "refund" embeds every other reason's
    # English descriptions as zero rows.
    encoder = TokenEncoder(["refund"], np.ones(1), projection=np.ones((1, 1)))
    classifier = ReasonClassifier.from_config(load_reason_config(), encoder.encode)
    customer = encoder.encode(["refund refund"])

    similarities = classifier.similarities(customer)
    assessment = classifier.classify([], customer)

    assert Reason.BILLING in similarities
    assert Reason.TECHNICAL not in similarities
    assert assessment.reason is Reason.BILLING
    assert assessment.source == "similarity"


def test_descriptions_all_outside_the_vocabulary_give_general() -> None:
    encoder = TokenEncoder(["w17"], np.ones(1), projection=np.ones((1, 1)))
    classifier = ReasonClassifier.from_config(load_reason_config(), encoder.encode)

    assessment = classifier.classify([], encoder.encode(["w17 w17"]))

    assert classifier.similarities(encoder.encode(["w17"])) == {}
    assert assessment.reason is Reason.GENERAL
    assert assessment.source == "default"
