"""Tests of the conversation schema: validation errors, the JSON Lines loader and round trips."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.errors import ConversationFileError, ConversationValidationError, SchemaError
from serving.schema import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    MAX_TURNS,
    Conversation,
    Role,
    Sentiment,
    parse_conversation,
    read_conversations,
    write_conversations,
)

EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "data" / "examples" / "conversation.jsonl"


def _conversation(*turns: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "c1", **fields, "turns": list(turns)}


def _customer(text: str = "my order never arrived", **fields: Any) -> dict[str, Any]:
    return {"role": "customer", "text": text, **fields}


def _assistant(text: str = "let me check that", **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "text": text, **fields}


def _only_problem(data: dict[str, Any]) -> tuple[Any, str]:
    with pytest.raises(ConversationValidationError) as caught:
        parse_conversation(data)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0], str(caught.value)


# One row per schema rule: the input, the turn index and field the error must name, and a
# fragment of the message.
INVALID_CASES = [
    pytest.param(
        _conversation(_customer(), {"role": "robot", "text": "beep"}),
        1, "role", "Input should be 'customer', 'assistant', 'agent' or 'system'",
        id="unknown-role",
    ),
    pytest.param(
        _conversation(_customer(), _assistant(confidence=1.5)),
        1, "confidence", "less than or equal to 1 (got 1.5)",
        id="confidence-above-one",
    ),
    pytest.param(
        _conversation(_customer(), _assistant(confidence=-0.1)),
        1, "confidence", "greater than or equal to 0",
        id="confidence-below-zero",
    ),
    pytest.param(
        _conversation(_customer(timestamp="2024-01-01T10:00:00Z"),
                      _assistant(timestamp="2024-01-01T09:59:59Z")),
        1, "timestamp", "earlier than turn 0",
        id="timestamp-backwards",
    ),
    pytest.param(
        _conversation(_customer(timestamp="2024-01-01T10:00:00Z"),
                      _assistant(),
                      _customer(timestamp="2024-01-01T09:00:00Z")),
        2, "timestamp", "earlier than turn 0",
        id="timestamp-backwards-across-untimed-turn",
    ),
    pytest.param(
        _conversation(_customer(timestamp="2024-01-01T10:00:00Z"),
                      started_at="2024-01-01T11:00:00Z"),
        0, "timestamp", "earlier than 'started_at'",
        id="timestamp-before-start",
    ),
    pytest.param(
        _conversation(_customer(timestamp="2024-01-01T10:00:00"),
                      _assistant(timestamp="2024-01-01T09:30:00+00:00")),
        1, "timestamp", "earlier than turn 0",
        id="naive-timestamp-compared-as-utc",
    ),
    pytest.param(
        _conversation(),
        None, "turns", "needs at least one turn",
        id="empty-conversation",
    ),
    pytest.param(
        _conversation(*[_customer("x")] * (MAX_TURNS + 1)),
        None, "turns", f"at most {MAX_TURNS} items",
        id="too-many-turns",
    ),
    pytest.param(
        _conversation(_customer("a" * (MAX_TEXT_CHARS + 1))),
        0, "text", f"at most {MAX_TEXT_CHARS} characters (got {MAX_TEXT_CHARS + 1} characters)",
        id="text-over-limit",
    ),
    pytest.param(
        _conversation(_customer(confidence=0.5)),
        0, "confidence", "only assistant turns may carry 'confidence'",
        id="confidence-on-customer-turn",
    ),
    pytest.param(
        _conversation(_customer(), {"role": "agent", "text": "hi", "kb_results": 2}),
        1, "kb_results", "only assistant turns may carry 'kb_results'",
        id="kb-results-on-agent-turn",
    ),
    pytest.param(
        _conversation(_customer(), _assistant(csat=4)),
        1, "csat", "only customer turns may carry 'csat'",
        id="csat-on-assistant-turn",
    ),
    pytest.param(
        _conversation(_customer(mood="angry")),
        0, "mood", "Extra inputs are not permitted",
        id="unknown-turn-field",
    ),
    pytest.param(
        _conversation(_customer(labels={"anger": True})),
        0, "labels.anger", "Extra inputs are not permitted",
        id="unknown-label-field",
    ),
    pytest.param(
        _conversation(_customer(labels={"satisfaction": 6})),
        0, "labels.satisfaction", "less than or equal to 5",
        id="satisfaction-out-of-range",
    ),
    pytest.param(
        _conversation(_customer(labels={"sentiment": "furious"})),
        0, "labels.sentiment", "Input should be 'negative', 'neutral' or 'positive'",
        id="unknown-sentiment",
    ),
    pytest.param(
        _conversation(_customer(), priority="high"),
        None, "priority", "Extra inputs are not permitted",
        id="unknown-conversation-field",
    ),
    pytest.param(
        _conversation(_customer(), customer={"tier": "gold"}),
        None, "customer.tier", "Extra inputs are not permitted",
        id="unknown-customer-field",
    ),
    pytest.param(
        _conversation(_customer(), labels={"escalation_turn": 1}),
        None, "labels.escalation_turn", "is 1 but the conversation has 1 turns",
        id="escalation-turn-out-of-range",
    ),
    pytest.param(
        _conversation(_customer(), channel="c" * (MAX_ID_CHARS + 1)),
        None, "channel", f"at most {MAX_ID_CHARS} characters",
        id="channel-over-limit",
    ),
]


@pytest.mark.parametrize(("data", "turn_index", "field", "fragment"), INVALID_CASES)
def test_invalid_conversation_names_id_turn_and_field(
    data: dict[str, Any], turn_index: int | None, field: str, fragment: str
) -> None:
    problem, message = _only_problem(data)
    assert problem.conversation_id == "c1"
    assert problem.turn_index == turn_index
    assert problem.field == field
    assert fragment in problem.message
    assert "conversation 'c1'" in message
    assert f"field '{field}'" in message
    if turn_index is not None:
        assert f"turn {turn_index}," in message


def test_validation_error_is_schema_error() -> None:
    with pytest.raises(SchemaError):
        parse_conversation(_conversation())


def test_missing_id_reported_without_id() -> None:
    problem, message = _only_problem({"turns": [_customer()]})
    assert problem.conversation_id is None
    assert problem.field == "id"
    assert "conversation without an id" in message


def test_every_problem_reported() -> None:
    data = _conversation(_customer(confidence=0.5), {"role": "robot", "text": "x"},
                         _assistant(csat=2))
    with pytest.raises(ConversationValidationError) as caught:
        parse_conversation(data)
    located = {(problem.turn_index, problem.field) for problem in caught.value.problems}
    assert located == {(0, "confidence"), (1, "role"), (2, "csat")}


def test_text_at_limit_accepted() -> None:
    conversation = parse_conversation(_conversation(_customer("a" * MAX_TEXT_CHARS)))
    assert len(conversation.turns[0].text) == MAX_TEXT_CHARS


def test_equal_timestamps_accepted() -> None:
    moment = "2024-01-01T10:00:00Z"
    conversation = parse_conversation(
        _conversation(_customer(timestamp=moment), _assistant(timestamp=moment),
                      started_at=moment)
    )
    assert conversation.turns[1].timestamp == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_customer_turn_indices_skip_other_roles() -> None:
    conversation = parse_conversation(
        _conversation(_customer(), _assistant(), {"role": "system", "text": "joined"},
                      _customer())
    )
    assert conversation.customer_turn_indices() == [0, 3]


# JSON Lines files


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data)


def test_file_bad_lines_all_reported(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "mixed.jsonl", [
        _line({"id": "good-1", "turns": [_customer()]}),
        _line({"id": "bad-2", "turns": [{"role": "robot", "text": "x"}]}),
        _line({"id": "bad-3", "turns": []}),
        _line({"id": "good-4", "turns": [_customer()]}),
        _line({"id": "bad-5", "turns": [_customer(confidence=0.9)]}),
    ])
    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)
    error = caught.value
    message = str(error)
    assert [problem.line_number for problem in error.problems] == [2, 3, 5]
    assert [problem.conversation_id for problem in error.problems] == ["bad-2", "bad-3", "bad-5"]
    assert "3 invalid line(s)" in message
    assert "nothing was loaded" in message
    assert "line 2, conversation 'bad-2', turn 0, field 'role'" in message
    assert "line 3, conversation 'bad-3', field 'turns'" in message
    assert "line 5, conversation 'bad-5', turn 0, field 'confidence'" in message
    assert error.path == path


def test_file_invalid_json_line_reported(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "broken.jsonl", [
        _line({"id": "good-1", "turns": [_customer()]}),
        '{"id": "broken", "turns": [',
    ])
    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)
    problem = caught.value.problems[0]
    assert problem.line_number == 2
    assert problem.field == "(json)"
    assert "not valid JSON" in problem.message


def test_file_duplicate_id_reported(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "duplicate.jsonl", [
        _line({"id": "same", "turns": [_customer()]}),
        _line({"id": "other", "turns": [_customer()]}),
        _line({"id": "same", "turns": [_customer("again")]}),
    ])
    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)
    problem = caught.value.problems[0]
    assert len(caught.value.problems) == 1
    assert problem.line_number == 3
    assert problem.field == "id"
    assert "first seen on line 1" in problem.message


def test_file_missing_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="conversation file not found"):
        read_conversations(tmp_path / "absent.jsonl")


def test_file_blank_lines_skipped(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "blank.jsonl", [
        "",
        _line({"id": "a", "turns": [_customer()]}),
        "   ",
        _line({"id": "b", "turns": [_customer()]}),
    ])
    assert [conversation.id for conversation in read_conversations(path)] == ["a", "b"]


def test_write_read_round_trip_of_example(tmp_path: Path) -> None:
    original = read_conversations(EXAMPLE_FILE)
    path = tmp_path / "copy.jsonl"
    count = write_conversations(original, path)
    assert count == 1
    assert read_conversations(path) == original


def test_write_leaves_out_unset_fields(tmp_path: Path) -> None:
    path = tmp_path / "sparse.jsonl"
    write_conversations([parse_conversation(_conversation(_customer()))], path)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written == {"id": "c1", "turns": [{"role": "customer",
                                              "text": "my order never arrived"}]}


# Property: every valid conversation survives a write and a read unchanged.

_SHORT_TEXT = st.text(max_size=40)
_NAME = st.text(min_size=1, max_size=MAX_ID_CHARS)
_OPTIONAL_NAME = st.none() | st.text(max_size=60)
_UNIT = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_MONEY = st.none() | st.floats(min_value=0.0, max_value=1e12, allow_nan=False,
                               allow_infinity=False)
_RATING = st.none() | st.integers(min_value=1, max_value=5)
_FLAG = st.none() | st.booleans()
_ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)),
                          timezone(timedelta(hours=-8))])


@st.composite
def _turn_labels(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    labels = {
        "satisfaction": draw(_RATING),
        "sentiment": draw(st.none() | st.sampled_from([item.value for item in Sentiment])),
        "frustration": draw(_FLAG),
        "handoff": draw(_FLAG),
    }
    return {key: value for key, value in labels.items() if value is not None}


@st.composite
def _turn(draw: st.DrawFn, moment: datetime | None) -> dict[str, Any]:
    role = draw(st.sampled_from(list(Role)))
    turn: dict[str, Any] = {"role": role.value, "text": draw(st.text(max_size=300))}
    if moment is not None:
        turn["timestamp"] = moment.isoformat()
    if role is Role.ASSISTANT:
        turn["confidence"] = draw(st.none() | _UNIT)
        turn["kb_results"] = draw(st.none() | st.integers(min_value=0, max_value=10_000))
    if role is Role.CUSTOMER:
        turn["csat"] = draw(_RATING)
    turn["labels"] = draw(_turn_labels())
    return {key: value for key, value in turn.items() if value is not None}


@st.composite
def _customer_profile(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    return {
        "customer_id": draw(_OPTIONAL_NAME),
        "name": draw(_OPTIONAL_NAME),
        "email": draw(_OPTIONAL_NAME),
        "plan": draw(_OPTIONAL_NAME),
        "account_value": draw(_MONEY),
        "vip": draw(st.booleans()),
        "enterprise": draw(st.booleans()),
        "past_due": draw(st.booleans()),
        "region": draw(_OPTIONAL_NAME),
        "previous_escalations": draw(st.integers(min_value=0, max_value=1_000)),
    }


@st.composite
def _valid_conversation(draw: st.DrawFn) -> Conversation:
    zone = draw(_ZONES)
    start = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)))
    start = start if zone is None else start.replace(tzinfo=zone)
    gaps = draw(st.lists(st.none() | st.integers(min_value=0, max_value=86_400_000_000),
                         min_size=1, max_size=8))

    moments: list[datetime | None] = []
    current = start
    for gap in gaps:
        if gap is None:
            moments.append(None)
            continue
        current = current + timedelta(microseconds=gap)
        moments.append(current)
    turns = [draw(_turn(moment)) for moment in moments]

    escalation_turn = draw(st.none() | st.integers(min_value=0, max_value=len(turns) - 1))
    labels = {
        "escalated": draw(_FLAG),
        "escalation_turn": escalation_turn,
        "escalation_reason": draw(st.none() | _SHORT_TEXT),
        "overall_satisfaction": draw(_RATING),
    }
    data: dict[str, Any] = {
        "id": draw(_NAME),
        "channel": draw(_OPTIONAL_NAME),
        "started_at": draw(st.sampled_from([None, start.isoformat()])),
        "source": draw(_OPTIONAL_NAME),
        "customer": draw(_customer_profile()),
        "turns": turns,
        "labels": draw(st.sampled_from([None, labels])),
    }
    return parse_conversation({key: value for key, value in data.items() if value is not None})


@pytest.fixture(scope="module")
def round_trip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("round_trip") / "conversations.jsonl"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conversations=st.lists(_valid_conversation(), min_size=1, max_size=4,
                              unique_by=lambda conversation: conversation.id))
def test_round_trip_property(round_trip_file: Path, conversations: list[Conversation]) -> None:
    write_conversations(conversations, round_trip_file)
    assert read_conversations(round_trip_file) == conversations


def test_infinite_account_value_rejected() -> None:
    with pytest.raises(ConversationValidationError, match="account_value"):
        parse_conversation(_conversation(_customer(), customer={"account_value": math.inf}))


def test_deeply_nested_line_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 200_000 + "\n", encoding="utf-8")

    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)

    assert len(caught.value.problems) == 1
    assert "nested too deeply" in str(caught.value)
    assert caught.value.problems[0].line_number == 1


@pytest.mark.parametrize(("labels", "field", "value"), [
    ({"satisfaction": True}, "labels.satisfaction", "True"),
    ({"satisfaction": "3"}, "labels.satisfaction", "'3'"),
    ({"frustration": "yes"}, "labels.frustration", "'yes'"),
    ({"handoff": 1}, "labels.handoff", "1"),
])
def test_turn_labels_are_strict(labels: dict[str, Any], field: str, value: str) -> None:
    problem, message = _only_problem(_conversation(_customer(labels=labels)))

    assert problem.field == field
    assert f"(got {value})" in message
    assert "valid integer" in message or "valid boolean" in message


@pytest.mark.parametrize(("labels", "field"), [
    ({"overall_satisfaction": False}, "labels.overall_satisfaction"),
    ({"escalated": "true"}, "labels.escalated"),
    ({"escalated": True, "escalation_turn": "0"}, "labels.escalation_turn"),
])
def test_conversation_labels_are_strict(labels: dict[str, Any], field: str) -> None:
    problem, _ = _only_problem(_conversation(_customer(), labels=labels))

    assert problem.field == field


def test_gzip_file_gets_format_hint(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "data.jsonl"
    path.write_bytes(gzip.compress(b"USER\tI need help\t\t2,2,3\n" * 20))

    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)

    first_line, rest = str(caught.value).split("\n", 1)
    assert "gzip-compressed" in first_line
    assert ".txt.gz" in first_line
    assert "invalid line(s)" in rest


def test_uss_text_gets_format_hint(tmp_path: Path) -> None:
    path = tmp_path / "dialogues.jsonl"
    path.write_text("USER\tI need help\tinform\t2,2,3\nSYSTEM\tSure, what is it?\trequest\n\n"
                    "USER\tOVERALL\t\t2,3,3\n", encoding="utf-8")

    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)

    first_line = str(caught.value).split("\n", 1)[0]
    assert "tab-separated USS dialogue text" in first_line
    assert "Name it .txt" in first_line
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(("text", "expected"), [
    ("[\n  {\"id\": \"a\", \"turns\": []},\n  {\"id\": \"b\", \"turns\": []}\n]\n",
     "jq -c '.[]'"),
    ("{\n  \"id\": \"a\",\n  \"turns\": []\n}\n", "pretty-printed JSON"),
])
def test_json_document_gets_format_hint(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "conversations.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)

    first_line = str(caught.value).split("\n", 1)[0]
    assert first_line.startswith(f"{path} is not JSON Lines")
    assert expected in first_line


def test_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "with-bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_conversation(_customer())).encode() + b"\n")

    conversations = read_conversations(path)

    assert len(conversations) == 1


def test_one_bad_line_gets_no_hint(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good = json.dumps(_conversation(_customer()))
    path.write_text(f"{good}\nUSER\tI need help\t\t2\n", encoding="utf-8")

    with pytest.raises(ConversationFileError) as caught:
        read_conversations(path)

    assert str(caught.value).startswith(f"{path}: 1 invalid line(s)")
