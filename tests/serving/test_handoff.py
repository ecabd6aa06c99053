"""Tests of the handoff package, its JSON Schema, text rendering, key points and messages.

Packages are built from the real example conversation and real USS dialogues, with the real
encoder, the real rule policy and `decide`. Turn scores are built directly from their
dataclass with fixed model outputs, so no bundle has to be trained.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.datasets.uss import read_bundled_uss
from pipelines.train.similar import build_similar_case_index
from serving.decision import Decision, DecisionThresholds, decide
from serving.encoder import Encoder
from serving.errors import HandoffConfigError
from serving.handoff import (
    DEFAULT_APPROACHES_PATH,
    DEFAULT_SCHEMA_PATH,
    Approach,
    HandoffPackage,
    approaches_from_dict,
    build_handoff_package,
    confidence_trend,
    handoff_schema,
    handoff_schema_text,
    load_approaches,
    render_text,
    write_handoff_schema,
)
from serving.keypoints import select_key_points
from serving.messages import (
    DEFAULT_MESSAGES_PATH,
    check_template,
    customer_messages,
    describe_wait,
    load_message_templates,
    message_templates_from_dict,
)
from serving.rules import load_policy, match_conversation
from serving.schema import Conversation, read_conversations
from serving.scorer import TurnScore
from serving.similar import SimilarCaseIndex, conversation_vector
from serving.tiers import Reason, Tier

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = REPOSITORY / "data" / "examples" / "conversation.jsonl"
THRESHOLDS = DecisionThresholds(escalation=0.6, prepare=0.3)
NOW = datetime(2024, 5, 14, 9, 13, 45, tzinfo=UTC)
ROUTING = {"team": "billing", "level": "L2", "agent_id": None, "queue_position": 3}


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path) -> Encoder:
    return Encoder(encoder_dir / "encoder.int8.onnx", encoder_dir / "tokenizer.json",
                   batch_size=1)


@pytest.fixture(scope="module")
def example() -> Conversation:
    return read_conversations(EXAMPLE_FILE)[0]


@pytest.fixture(scope="module")
def at_handoff(example: Conversation) -> Conversation:
    """The example conversation as it stood when it was escalated, after turn 2."""
    data = example.model_dump()
    data["turns"] = data["turns"][:3]
    return Conversation.model_validate(data)


@pytest.fixture(scope="module")
def uss() -> list[Conversation]:
    return read_bundled_uss()


@pytest.fixture(scope="module")
def approaches() -> dict[Reason, Approach]:
    return load_approaches()


@pytest.fixture(scope="module")
def similar_index(
    tmp_path_factory: pytest.TempPathFactory, encoder: Encoder, uss: list[Conversation],
    example: Conversation,
) -> SimilarCaseIndex:
    folder = tmp_path_factory.mktemp("bundle")
    build_similar_case_index([*uss[:60], example], encoder.encode, folder)
    return SimilarCaseIndex.load(folder)


def scored(conversation: Conversation, probabilities: list[float]) -> tuple[list[TurnScore],
                                                                             Decision]:
    """Return turn scores with the given escalation probabilities and the final decision."""
    matches = match_conversation(conversation, load_policy())
    scores = []
    for position, (index, probability) in enumerate(
            zip(conversation.customer_turn_indices(), probabilities, strict=True)):
        negative = 0.2 + 0.1 * position
        scores.append(TurnScore(
            turn_index=index,
            sentiment={"negative": negative, "neutral": 0.7 - negative, "positive": 0.3},
            frustration=0.1 + 0.2 * position,
            escalation_probability=probability,
            matches=tuple(match for match in matches if match.turn_index == index),
            decision=decide(probability, index, matches, THRESHOLDS),
        ))
    decision = decide(probabilities[-1], len(conversation.turns) - 1, matches, THRESHOLDS)
    return scores, decision


@pytest.fixture(scope="module")
def package(
    at_handoff: Conversation, encoder: Encoder, similar_index: SimilarCaseIndex,
    approaches: dict[Reason, Approach],
) -> HandoffPackage:
    scores, decision = scored(at_handoff, [0.35, 0.82])
    return build_handoff_package(at_handoff, scores, decision, routing=ROUTING,
                                 embed=encoder.encode, similar_index=similar_index,
                                 approaches=approaches, now=NOW, bundle="escalation-test")


@pytest.fixture(scope="module")
def text(package: HandoffPackage) -> str:
    return render_text(package)


def conversation_with(*turns: dict[str, Any]) -> Conversation:
    return Conversation.model_validate({"id": "c1", "turns": list(turns)})


def schema_problems(value: Any, schema: dict[str, Any], defs: dict[str, Any],
                    path: str = "$") -> list[str]:
    """Return where `value` breaks `schema`: refs, anyOf, const, enum, types, keys and arrays.

    jsonschema is not installed in this environment, so this checks the keywords that
    pydantic writes into the published schema; string formats are not checked.
    """
    if "$ref" in schema:
        return schema_problems(value, defs[schema["$ref"].rsplit("/", 1)[-1]], defs, path)
    if "anyOf" in schema:
        if any(not schema_problems(value, option, defs, path) for option in schema["anyOf"]):
            return []
        return [f"{path}: {value!r} matches no anyOf option"]
    if "const" in schema and value != schema["const"]:
        return [f"{path}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]

    expected = schema.get("type")
    if expected is None:
        return []
    if not _has_type(value, expected):
        return [f"{path}: {value!r} is not of type {expected}"]
    if expected == "object":
        return _object_problems(value, schema, defs, path)
    if expected == "array":
        return _array_problems(value, schema, defs, path)
    return []


JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "integer": int,
    "number": (int, float), "null": type(None),
}


def _has_type(value: Any, expected: str) -> bool:
    # bool is a subclass of int in Python but not a number in JSON Schema.
    if expected in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, JSON_TYPES[expected])


def _object_problems(value: dict[str, Any], schema: dict[str, Any], defs: dict[str, Any],
                     path: str) -> list[str]:
    properties = schema.get("properties", {})
    problems = [f"{path}: missing {key!r}" for key in schema.get("required", [])
                if key not in value]
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            problems += schema_problems(item, properties[key], defs, f"{path}.{key}")
        elif extra is False:
            problems.append(f"{path}: unexpected key {key!r}")
        elif isinstance(extra, dict):
            problems += schema_problems(item, extra, defs, f"{path}.{key}")
    return problems


def _array_problems(value: list[Any], schema: dict[str, Any], defs: dict[str, Any],
                    path: str) -> list[str]:
    problems = []
    if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
        problems.append(f"{path}: {len(value)} items is outside the allowed count")
    prefix = schema.get("prefixItems", [])
    for position, item in enumerate(value):
        item_schema = prefix[position] if position < len(prefix) else schema.get("items", {})
        problems += schema_problems(item, item_schema, defs, f"{path}[{position}]")
    return problems


def published_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def templates_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_MESSAGES_PATH.read_text(encoding="utf-8"))
    return data


def approaches_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_APPROACHES_PATH.read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------------------------------------
# JSON Schema
# ---------------------------------------------------------------------------------------------


def test_published_schema_is_current() -> None:
    assert DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8") == handoff_schema_text(), (
        "serving/schemas/handoff_package.schema.json is stale; regenerate it with "
        "`.venv/bin/python -m serving.handoff` and commit the result")


def test_write_schema_round_trips(tmp_path: Path) -> None:
    path = write_handoff_schema(tmp_path / "nested" / "schema.json")

    assert json.loads(path.read_text(encoding="utf-8")) == handoff_schema()


def test_schema_declares_dialect_and_version() -> None:
    schema = published_schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"]["const"] == "1.0"
    assert "schema_version" in schema["required"]


def test_package_conforms_to_published_schema(package: HandoffPackage) -> None:
    schema = published_schema()

    problems = schema_problems(package.model_dump(mode="json"), schema, schema["$defs"])

    assert problems == []


def test_schema_checker_catches_extra_key(package: HandoffPackage) -> None:
    schema = published_schema()
    data = package.model_dump(mode="json")
    data["urgency"]["colour"] = "red"

    assert schema_problems(data, schema, schema["$defs"]) == [
        "$.urgency: unexpected key 'colour'"]


def test_package_json_round_trips(package: HandoffPackage) -> None:
    assert HandoffPackage.model_validate_json(package.model_dump_json()) == package


def test_package_rejects_unknown_field(package: HandoffPackage) -> None:
    data = package.model_dump(mode="json")
    data["notes"] = "x"

    with pytest.raises(ValueError, match="notes"):
        HandoffPackage.model_validate(data)


# ---------------------------------------------------------------------------------------------
# Package content
# ---------------------------------------------------------------------------------------------


def test_package_identifiers(package: HandoffPackage) -> None:
    assert package.schema_version == "1.0"
    assert package.conversation_id == "example-billing-0001"
    assert package.bundle == "escalation-test"
    assert package.created_at == NOW
    assert len(package.package_id) == 36


def test_package_urgency(package: HandoffPackage) -> None:
    assert package.urgency.tier is Tier.IMMEDIATE
    assert package.urgency.sla_seconds == 0
    assert package.urgency.respond_by == NOW
    assert package.urgency.escalate is True
    assert package.urgency.escalation_probability == 0.82
    assert package.urgency.escalation_threshold == 0.6


def test_package_reason_and_trigger(package: HandoffPackage) -> None:
    assert package.reason is Reason.BILLING
    assert package.trigger is not None
    assert package.trigger.code == "billing_dispute"
    assert package.trigger.turn_index == 0
    assert package.trigger.evidence["matched_text"] == "charged twice"


def test_package_lists_every_decision_reason(package: HandoffPackage) -> None:
    codes = [reason.code for reason in package.reasons]

    assert codes == ["billing_dispute", "billing_dispute", "escalation_probability",
                     "repeat_customer", "account_flag"]


def test_personal_fields_are_marked(package: HandoffPackage) -> None:
    personal = {field.name: field.personal for field in package.customer}

    assert personal == {
        "customer_id": True, "name": True, "email": True, "plan": False,
        "account_value": False, "vip": False, "enterprise": False, "past_due": False,
        "region": False, "previous_escalations": False,
    }


def test_customer_field_values_keep_types(package: HandoffPackage) -> None:
    values = {field.name: field.value for field in package.customer}

    assert values["enterprise"] is True
    assert values["previous_escalations"] == 1
    assert values["account_value"] == 12400.0
    assert values["region"] == "eu-west"


def test_conversation_duration_from_timestamps(package: HandoffPackage) -> None:
    info = package.conversation

    assert info.duration_seconds == 100.0
    assert info.turn_count == 3
    assert info.customer_turn_count == 2
    assert info.channel == "web_chat"
    assert info.last_message_at == datetime(2024, 5, 14, 9, 13, 40, tzinfo=UTC)


def test_single_answer_confidence(package: HandoffPackage) -> None:
    trend = package.assistant_confidence

    assert [(point.turn_index, point.confidence) for point in trend.answers] == [(1, 0.62)]
    assert (trend.first, trend.last, trend.minimum) == (0.62, 0.62, 0.62)
    assert trend.slope_per_answer is None
    assert trend.direction is None


def test_customer_signals_follow_turn_scores(package: HandoffPackage) -> None:
    signals = package.customer_signals

    assert [signal.turn_index for signal in signals] == [0, 2]
    assert [signal.escalation_probability for signal in signals] == [0.35, 0.82]
    assert signals[1].negative == pytest.approx(0.3)
    assert signals[1].frustration == pytest.approx(0.3)


def test_key_points_are_customer_sentences_in_order(package: HandoffPackage,
                                                    at_handoff: Conversation) -> None:
    points = package.key_points

    assert len(points) == 3
    assert [point.turn_index for point in points] == sorted(point.turn_index
                                                            for point in points)
    for point in points:
        assert at_handoff.turns[point.turn_index].role.value == "customer"
        assert at_handoff.turns[point.turn_index].text[point.span[0]:point.span[1]] == point.text


def test_package_entities(package: HandoffPackage) -> None:
    assert [(entity.kind.value, entity.text, entity.turn_index)
            for entity in package.entities] == [("deadline", "today", 2)]


def test_package_approach_for_reason(package: HandoffPackage,
                                     approaches: dict[Reason, Approach]) -> None:
    assert package.approach.reason is Reason.BILLING
    assert package.approach.summary == approaches[Reason.BILLING].summary
    assert package.approach.checklist == approaches[Reason.BILLING].checklist


def test_similar_cases_exclude_own_conversation(
    package: HandoffPackage, similar_index: SimilarCaseIndex, at_handoff: Conversation,
    encoder: Encoder,
) -> None:
    vector = conversation_vector(at_handoff, encoder.encode)
    assert vector is not None
    # The example conversation is in the index and is its own nearest neighbour ...
    assert similar_index.nearest(vector, k=1)[0].id == "example-billing-0001"
    # ... so only the exclusion keeps it out of the package.
    assert "example-billing-0001" not in [case.id for case in package.similar_cases]
    assert len(package.similar_cases) == 3


def test_routing_is_copied(package: HandoffPackage) -> None:
    assert package.routing == ROUTING


def test_naive_now_is_utc(at_handoff: Conversation, encoder: Encoder,
                          approaches: dict[Reason, Approach]) -> None:
    scores, decision = scored(at_handoff, [0.35, 0.82])

    built = build_handoff_package(at_handoff, scores, decision, routing=None,
                                  embed=encoder.encode, similar_index=None,
                                  approaches=approaches, now=NOW.replace(tzinfo=None),
                                  bundle="b")

    assert built.created_at == NOW


def test_reason_argument_overrides_decision(at_handoff: Conversation, encoder: Encoder,
                                            approaches: dict[Reason, Approach]) -> None:
    scores, decision = scored(at_handoff, [0.35, 0.82])

    built = build_handoff_package(at_handoff, scores, decision, routing=None,
                                  embed=encoder.encode, similar_index=None,
                                  approaches=approaches, now=NOW, bundle="b",
                                  reason=Reason.ACCOUNT)

    assert decision.reason_category is Reason.BILLING
    assert built.reason is Reason.ACCOUNT
    assert built.approach.reason is Reason.ACCOUNT


def test_uss_conversation_package(uss: list[Conversation], encoder: Encoder,
                                  approaches: dict[Reason, Approach]) -> None:
    conversation = uss[0]
    scores, decision = scored(conversation, [0.1] * len(conversation.customer_turn_indices()))

    built = build_handoff_package(conversation, scores, decision, routing=None,
                                  embed=encoder.encode, similar_index=None,
                                  approaches=approaches, now=NOW, bundle="b")

    assert built.customer == []
    assert built.conversation.duration_seconds is None
    assert built.assistant_confidence.answers == []
    assert built.similar_cases == []
    assert built.routing is None
    assert len(built.customer_signals) == len(conversation.customer_turn_indices())


def test_no_escalation_uses_general_approach(uss: list[Conversation], encoder: Encoder,
                                             approaches: dict[Reason, Approach]) -> None:
    conversation = uss[0]
    scores, decision = scored(conversation, [0.1] * len(conversation.customer_turn_indices()))

    built = build_handoff_package(conversation, scores, decision, routing=None,
                                  embed=encoder.encode, similar_index=None,
                                  approaches=approaches, now=NOW, bundle="b")

    assert decision.tier is Tier.NONE
    assert built.reason is None
    assert built.trigger is None
    assert built.urgency.respond_by is None
    assert built.approach.reason is Reason.GENERAL


def test_turn_score_of_assistant_turn_raises(at_handoff: Conversation, encoder: Encoder,
                                             approaches: dict[Reason, Approach]) -> None:
    scores, decision = scored(at_handoff, [0.35, 0.82])
    wrong = [scores[0], TurnScore(1, scores[1].sentiment, 0.1, 0.5, (), scores[1].decision)]

    with pytest.raises(ValueError, match="turn score for turn 1 does not match a customer"):
        build_handoff_package(at_handoff, wrong, decision, routing=None, embed=encoder.encode,
                              similar_index=None, approaches=approaches, bundle="b")


def test_duplicate_turn_score_raises(at_handoff: Conversation, encoder: Encoder,
                                     approaches: dict[Reason, Approach]) -> None:
    scores, decision = scored(at_handoff, [0.35, 0.82])

    with pytest.raises(ValueError, match="turn 2 has more than one turn score"):
        build_handoff_package(at_handoff, [*scores, scores[1]], decision, routing=None,
                              embed=encoder.encode, similar_index=None,
                              approaches=approaches, bundle="b")


def test_missing_approach_raises(at_handoff: Conversation, encoder: Encoder,
                                 approaches: dict[Reason, Approach]) -> None:
    scores, decision = scored(at_handoff, [0.35, 0.82])
    partial: dict[Reason, Approach] = {reason: approach for reason, approach in approaches.items()
               if reason is not Reason.BILLING}

    with pytest.raises(ValueError, match="no recommended approach for reason 'billing'"):
        build_handoff_package(at_handoff, scores, decision, routing=None, embed=encoder.encode,
                              similar_index=None, approaches=partial, bundle="b")


def test_build_logs_no_text_or_personal_data(
    at_handoff: Conversation, encoder: Encoder, similar_index: SimilarCaseIndex,
    approaches: dict[Reason, Approach], caplog: pytest.LogCaptureFixture,
) -> None:
    scores, decision = scored(at_handoff, [0.35, 0.82])
    caplog.set_level(logging.DEBUG)

    build_handoff_package(at_handoff, scores, decision, routing=ROUTING, embed=encoder.encode,
                          similar_index=similar_index, approaches=approaches, bundle="b")

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "built handoff package" in logged
    profile = at_handoff.customer
    assert profile is not None
    for secret in (profile.name, profile.email, profile.customer_id):
        assert secret is not None
        assert secret not in logged
    for turn in at_handoff.turns:
        assert turn.text[:25] not in logged


# ---------------------------------------------------------------------------------------------
# Confidence trend
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("confidences", "slope", "direction"), [
    ([0.9, 0.7, 0.5], -0.2, "falling"),
    ([0.6, 0.61, 0.62], 0.01, "flat"),
    ([0.3, 0.5, 0.9], 0.3, "rising"),
])
def test_confidence_slope(confidences: list[float], slope: float, direction: str) -> None:
    turns: list[dict[str, Any]] = []
    for confidence in confidences:
        turns.append({"role": "customer", "text": "It still fails."})
        turns.append({"role": "assistant", "text": "Try again.", "confidence": confidence})

    trend = confidence_trend(conversation_with(*turns))

    assert trend.slope_per_answer == pytest.approx(slope)
    assert trend.direction == direction
    assert trend.minimum == min(confidences)
    assert trend.first == confidences[0]
    assert trend.last == confidences[-1]


def test_confidence_skips_answers_without_value() -> None:
    trend = confidence_trend(conversation_with(
        {"role": "customer", "text": "Hi"},
        {"role": "assistant", "text": "Hello", "confidence": 0.8},
        {"role": "assistant", "text": "Anything else?"},
        {"role": "assistant", "text": "Sure", "confidence": 0.4},
    ))

    assert [point.turn_index for point in trend.answers] == [1, 3]
    assert trend.slope_per_answer == pytest.approx(-0.4)


# ---------------------------------------------------------------------------------------------
# Key points
# ---------------------------------------------------------------------------------------------

BILLING_WITH_ASIDE = [
    {"role": "customer", "text": "Hi there. My invoice shows a charge I do not recognise."},
    {"role": "assistant", "text": "I can help with billing questions."},
    {"role": "customer", "text": "My dog likes to swim in the lake. I was billed twice for the "
                                 "same month."},
    {"role": "assistant", "text": "Let me look."},
    {"role": "customer", "text": "Please refund the extra payment on my card. Thanks!"},
]


def test_key_points_skip_off_topic_sentence(encoder: Encoder) -> None:
    points = select_key_points(conversation_with(*BILLING_WITH_ASIDE), encoder.encode, k=3)

    assert [point.text for point in points] == [
        "My invoice shows a charge I do not recognise.",
        "I was billed twice for the same month.",
        "Please refund the extra payment on my card.",
    ]


def test_key_points_skip_short_sentences(encoder: Encoder) -> None:
    points = select_key_points(conversation_with(*BILLING_WITH_ASIDE), encoder.encode, k=10)

    texts = [point.text for point in points]
    assert "Hi there." not in texts
    assert "Thanks!" not in texts
    assert len(texts) == 4


def test_key_points_fall_back_to_short_sentences(encoder: Encoder) -> None:
    points = select_key_points(conversation_with({"role": "customer", "text": "Help!"}),
                               encoder.encode)

    assert [point.text for point in points] == ["Help!"]


def test_key_points_skip_thanks_in_example(example: Conversation, encoder: Encoder) -> None:
    texts = [point.text for point in select_key_points(example, encoder.encode, k=3)]

    assert "Thanks, that was quick." not in texts


def test_key_points_of_uss_dialogue_match_spans(uss: list[Conversation],
                                                encoder: Encoder) -> None:
    conversation = uss[1000]

    points = select_key_points(conversation, encoder.encode, k=3)

    assert len(points) == 3
    for point in points:
        assert conversation.turns[point.turn_index].text[point.span[0]:point.span[1]] == \
            point.text


def test_key_points_without_customer_text_are_empty(encoder: Encoder) -> None:
    conversation = conversation_with({"role": "assistant", "text": "Hello, how can I help?"})

    assert select_key_points(conversation, encoder.encode) == []


def test_key_points_reject_k_zero(encoder: Encoder) -> None:
    with pytest.raises(ValueError, match="k is 0"):
        select_key_points(conversation_with(*BILLING_WITH_ASIDE), encoder.encode, k=0)


def test_key_points_reject_wrong_embedding_rows(encoder: Encoder) -> None:
    def short_embed(texts: list[str]) -> Any:
        return encoder.encode(texts)[:-1]

    with pytest.raises(ValueError, match="one row per text"):
        select_key_points(conversation_with(*BILLING_WITH_ASIDE), short_embed)


# ---------------------------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------------------------


def test_text_starts_with_tier(text: str) -> None:
    assert text.splitlines()[0] == "HANDOFF: IMMEDIATE (respond now)"


def test_text_names_reason_and_trigger(text: str) -> None:
    flat = " ".join(text.split())

    assert "Reason: billing" in text
    assert "(billing_dispute, turn 0)" in flat


def test_text_contains_key_points(text: str, package: HandoffPackage) -> None:
    flat = " ".join(text.split())

    for point in package.key_points:
        assert point.text in flat


def test_text_puts_urgent_sections_first(text: str) -> None:
    order = [text.index(title) for title in (
        "HANDOFF:", "KEY POINTS", "DETAILS", "ALREADY SUGGESTED", "RECOMMENDED APPROACH",
        "WHY ESCALATED", "CUSTOMER", "SIGNALS", "CONVERSATION", "SIMILAR RESOLVED CASES",
        "ROUTING")]

    assert order == sorted(order)


def test_text_marks_personal_fields(text: str) -> None:
    assert "- name*: Dana Whitfield" in text
    assert "- plan: business" in text


def test_text_lines_are_short(text: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= 78


def test_text_is_deterministic(package: HandoffPackage, text: str) -> None:
    copied = HandoffPackage.model_validate_json(package.model_dump_json())

    assert render_text(copied) == text


def test_text_shows_rapid_deadline(package: HandoffPackage) -> None:
    data = copy.deepcopy(package.model_dump(mode="json"))
    data["urgency"].update(tier="rapid", sla_seconds=120,
                           respond_by=(NOW + timedelta(seconds=120)).isoformat())

    first = render_text(HandoffPackage.model_validate(data)).splitlines()[0]

    assert first == "HANDOFF: RAPID (respond within 2 min, by 2024-05-14 09:15:45 UTC)"


def test_text_lists_similar_cases(text: str, package: HandoffPackage) -> None:
    for case in package.similar_cases:
        assert f"- {case.id} (similarity {case.score:.2f}" in text


def test_text_wraps_long_ids(package: HandoffPackage) -> None:
    long_id = "conversation-" + "x" * 150
    data = package.model_dump(mode="json")
    data["conversation_id"] = long_id

    rendered = render_text(HandoffPackage.model_validate(data))

    assert max(len(line) for line in rendered.splitlines()) <= 78
    assert long_id in "".join(rendered.split())


# ---------------------------------------------------------------------------------------------
# Approaches
# ---------------------------------------------------------------------------------------------


def test_approaches_cover_every_reason(approaches: dict[Reason, Approach]) -> None:
    assert set(approaches) == set(Reason)


def test_approaches_missing_reason_raises() -> None:
    data = approaches_data()
    del data["approaches"]["sales"]

    with pytest.raises(HandoffConfigError, match="exactly one entry per reason"):
        approaches_from_dict(data)


def test_approaches_long_summary_raises() -> None:
    data = approaches_data()
    data["approaches"]["billing"]["summary"] = "x" * 401

    with pytest.raises(HandoffConfigError, match="approaches.billing.summary"):
        approaches_from_dict(data)


def test_approaches_empty_checklist_raises() -> None:
    data = approaches_data()
    data["approaches"]["urgent"]["checklist"] = []

    with pytest.raises(HandoffConfigError, match="approaches.urgent.checklist"):
        approaches_from_dict(data)


# ---------------------------------------------------------------------------------------------
# Customer messages
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "words"), [
    (0, "less than a minute"),
    (59, "less than a minute"),
    (60, "about 1 minute"),
    (89, "about 1 minute"),
    (90, "about 2 minutes"),
    (120, "about 2 minutes"),
    (14 * 60, "about 14 minutes"),
    (17 * 60, "about 15 minutes"),
    (58 * 60, "about 1 hour"),
    (3 * 3600 + 1700, "about 3 hours"),
    (30 * 3600, "about 1 day"),
    (60 * 3600, "about 3 days"),
])
def test_wait_in_words(seconds: float, words: str) -> None:
    assert describe_wait(seconds) == words


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_wait_rejects_invalid_seconds(seconds: float) -> None:
    with pytest.raises(ValueError, match="pass a finite number >= 0"):
        describe_wait(seconds)


def test_messages_fill_names_and_wait() -> None:
    messages = customer_messages(Tier.RAPID, Reason.BILLING, wait_seconds=95,
                                 agent_name="Marco", customer_name="Dana")

    assert messages.escalation_notice.startswith("Hi Dana, ")
    assert "about 2 minutes" in messages.wait_update
    assert messages.agent_introduction.startswith("Marco from our billing team")


def test_messages_use_fallback_names() -> None:
    messages = customer_messages(Tier.SCHEDULED, None, wait_seconds=400, agent_name=None,
                                 customer_name="  ")

    assert messages.escalation_notice.startswith("Hi there, ")
    assert messages.agent_introduction.startswith("A colleague from our support team")


def test_messages_default_wait_is_tier_sla() -> None:
    messages = customer_messages(Tier.RAPID, None, wait_seconds=None, agent_name=None,
                                 customer_name=None)

    assert "about 2 minutes" in messages.wait_update


def test_messages_tier_reason_override_wins() -> None:
    urgent = customer_messages(Tier.IMMEDIATE, Reason.URGENT, wait_seconds=0, agent_name=None,
                               customer_name="Dana")
    general = customer_messages(Tier.IMMEDIATE, Reason.GENERAL, wait_seconds=0,
                                agent_name=None, customer_name="Dana")

    assert "right away" in urgent.escalation_notice
    assert "right away" not in general.escalation_notice


def test_messages_reject_tier_none() -> None:
    with pytest.raises(ValueError, match="tier 'none'"):
        customer_messages(Tier.NONE, None, wait_seconds=None, agent_name=None,
                          customer_name=None)


@pytest.mark.parametrize("tier", [Tier.IMMEDIATE, Tier.RAPID, Tier.SCHEDULED])
@pytest.mark.parametrize("reason", [None, *Reason])
def test_every_tier_and_reason_renders(tier: Tier, reason: Reason | None) -> None:
    messages = customer_messages(tier, reason, wait_seconds=None, agent_name="Sam",
                                 customer_name="Ana")

    for message in messages.model_dump().values():
        assert "{" not in message


def test_default_templates_load() -> None:
    templates = load_message_templates(DEFAULT_MESSAGES_PATH)

    assert set(templates.tiers) == {Tier.IMMEDIATE, Tier.RAPID, Tier.SCHEDULED}


def test_unknown_placeholder_names_template_key() -> None:
    data = templates_data()
    data["tiers"]["rapid"]["default"]["wait_update"] = "Wait {minutes} please."

    with pytest.raises(HandoffConfigError,
                       match=r"'tiers.rapid.default.wait_update' uses the unknown placeholder "
                             r"\{minutes\}; allowed placeholders: \{agent_name\}"):
        message_templates_from_dict(data)


def test_positional_placeholder_raises() -> None:
    data = templates_data()
    data["reasons"]["billing"]["agent_introduction"] = "{} joined"

    with pytest.raises(HandoffConfigError, match="'reasons.billing.agent_introduction'"):
        message_templates_from_dict(data)


def test_attribute_placeholder_raises() -> None:
    with pytest.raises(HandoffConfigError, match=r"unknown placeholder \{agent_name.upper\}"):
        check_template("{agent_name.upper} joined", "key")


def test_format_spec_raises() -> None:
    with pytest.raises(HandoffConfigError, match="conversion or format spec"):
        check_template("{wait:>10}", "key")


def test_unbalanced_brace_raises() -> None:
    with pytest.raises(HandoffConfigError, match="not a valid format string"):
        check_template("Hi {customer_name", "tiers.rapid.default.escalation_notice")


def test_literal_braces_are_allowed() -> None:
    check_template("Use {{code}} for {customer_name}", "key")


def test_missing_default_entry_raises() -> None:
    data = templates_data()
    del data["tiers"]["scheduled"]["default"]

    with pytest.raises(HandoffConfigError, match="'tiers.scheduled.default' is missing"):
        message_templates_from_dict(data)


def test_incomplete_default_entry_raises() -> None:
    data = templates_data()
    del data["tiers"]["immediate"]["default"]["agent_introduction"]

    with pytest.raises(HandoffConfigError,
                       match="'tiers.immediate.default.agent_introduction' is missing"):
        message_templates_from_dict(data)


def test_tier_none_section_raises() -> None:
    data = templates_data()
    data["tiers"]["none"] = data["tiers"]["rapid"]

    with pytest.raises(HandoffConfigError, match="unknown key 'tiers.none'"):
        message_templates_from_dict(data)


def test_unknown_reason_raises() -> None:
    data = templates_data()
    data["reasons"]["weather"] = {"escalation_notice": "Hi"}

    with pytest.raises(HandoffConfigError, match="unknown key 'reasons.weather'"):
        message_templates_from_dict(data)


def test_unknown_message_key_raises() -> None:
    data = templates_data()
    data["tiers"]["rapid"]["default"]["farewell"] = "Bye"

    with pytest.raises(HandoffConfigError, match="unknown key 'tiers.rapid.default.farewell'"):
        message_templates_from_dict(data)


def test_duplicate_yaml_key_raises(tmp_path: Path) -> None:
    path = tmp_path / "messages.yaml"
    path.write_text("version: 1\nversion: 1\n", encoding="utf-8")

    with pytest.raises(HandoffConfigError, match="duplicate key 'version'"):
        load_message_templates(path)


def test_missing_templates_file_raises(tmp_path: Path) -> None:
    with pytest.raises(HandoffConfigError, match="file not found"):
        load_message_templates(tmp_path / "absent.yaml")

