"""Tests of the escalation features: values, causality and the incremental state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from serving.features import (
    CONTEXT_FEATURE_NAMES,
    EMBEDDING_DIMENSION,
    FEATURE_NAMES,
    ConversationFeatures,
    FeatureState,
    MessageSignals,
    conversation_feature_matrix,
    uppercase_ratio,
)
from serving.rules import load_policy, match_conversation
from serving.schema import Conversation


def _unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=EMBEDDING_DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _signals(seed: int, negative: float, frustration: float) -> MessageSignals:
    sentiment = np.asarray([negative, (1 - negative) / 2, (1 - negative) / 2], dtype=np.float32)
    return MessageSignals(_unit(seed), sentiment, frustration)


START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _conversation() -> Conversation:
    return Conversation.model_validate({
        "id": "feature-case",
        "started_at": START.isoformat(),
        "turns": [
            {"role": "customer", "text": "My invoice is wrong", "timestamp": START.isoformat()},
            {"role": "assistant", "text": "Let me check.", "confidence": 0.9, "kb_results": 2,
             "timestamp": (START + timedelta(seconds=30)).isoformat()},
            {"role": "customer", "text": "It is STILL WRONG!!! This is terrible",
             "timestamp": (START + timedelta(minutes=2)).isoformat()},
            {"role": "assistant", "text": "I'm not sure.", "confidence": 0.5, "kb_results": 0,
             "timestamp": (START + timedelta(minutes=3)).isoformat()},
            {"role": "customer", "text": "My invoice is wrong",
             "timestamp": (START + timedelta(minutes=12)).isoformat()},
        ],
    })


def _matrix() -> np.ndarray:
    conversation = _conversation()
    signals = [_signals(1, 0.2, 0.1), _signals(2, 0.8, 0.9), _signals(1, 0.6, 0.7)]
    matches = match_conversation(conversation, load_policy())
    return conversation_feature_matrix(conversation, signals, matches)


def _column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_matrix_shape_one_row_per_customer_turn() -> None:
    matrix = _matrix()

    assert matrix.shape == (3, EMBEDDING_DIMENSION + len(CONTEXT_FEATURE_NAMES))
    assert matrix.dtype == np.float32


def test_embedding_is_first_block() -> None:
    matrix = _matrix()

    np.testing.assert_allclose(matrix[1, :EMBEDDING_DIMENSION], _unit(2), rtol=0, atol=0)


def test_context_values_of_third_turn() -> None:
    row = _matrix()[2]

    assert row[_column("customer_turn_number")] == 3
    assert row[_column("frustration")] == pytest.approx(0.7)
    assert row[_column("frustration_previous_mean")] == pytest.approx(0.5)
    assert row[_column("frustration_previous_max")] == pytest.approx(0.9)
    assert row[_column("frustration_trend")] == pytest.approx(0.2)
    assert row[_column("frustration_change")] == pytest.approx(-0.2)
    assert row[_column("confidence_last")] == pytest.approx(0.5)
    assert row[_column("confidence_min")] == pytest.approx(0.5)
    assert row[_column("confidence_drop")] == pytest.approx(0.4)
    assert row[_column("kb_empty_count")] == 1
    assert row[_column("seconds_since_start_log")] == pytest.approx(np.log1p(720), rel=1e-6)


def test_repeated_question_detected() -> None:
    row = _matrix()[2]

    assert row[_column("repeat_similarity_max")] == pytest.approx(1.0, abs=1e-5)
    assert row[_column("repeat_count")] == 1


def test_first_turn_has_no_history() -> None:
    row = _matrix()[0]

    assert row[_column("frustration_previous_mean")] == 0
    assert row[_column("repeat_similarity_max")] == 0
    assert row[_column("confidence_present")] == 0
    assert row[_column("confidence_last")] == 1.0


def test_rule_counts_include_current_turn() -> None:
    matrix = _matrix()

    # Turn 2 contains shouting and "terrible" (rapid). Turn 3 adds a low confidence (immediate).
    assert matrix[1, _column("rules_rapid_log")] > 0
    assert matrix[0, _column("rules_rapid_log")] == 0
    assert matrix[2, _column("rules_immediate_log")] > 0


def test_features_are_causal() -> None:
    conversation = _conversation()
    signals = [_signals(1, 0.2, 0.1), _signals(2, 0.8, 0.9), _signals(1, 0.6, 0.7)]
    policy = load_policy()
    full = conversation_feature_matrix(conversation, signals,
                                       match_conversation(conversation, policy))
    prefix = conversation.model_copy(update={"turns": conversation.turns[:3]})
    partial = conversation_feature_matrix(prefix, signals[:2],
                                          match_conversation(prefix, policy))

    np.testing.assert_array_equal(full[:2], partial)


def test_state_round_trip_continues_identically() -> None:
    conversation = _conversation()
    signals = [_signals(1, 0.2, 0.1), _signals(2, 0.8, 0.9), _signals(1, 0.6, 0.7)]
    builder = ConversationFeatures()
    builder.customer_turn_vector(0, conversation, signals[0])
    builder.observe_turn(conversation.turns[1], conversation)

    restored = ConversationFeatures(FeatureState.from_dict(builder.state.to_dict()))
    expected = builder.customer_turn_vector(2, conversation, signals[1])
    actual = restored.customer_turn_vector(2, conversation, signals[1])

    np.testing.assert_array_equal(expected, actual)


def test_signal_count_mismatch_rejected() -> None:
    conversation = _conversation()

    with pytest.raises(ValueError, match="3 customer turns but 2 message signals"):
        conversation_feature_matrix(conversation, [_signals(1, 0.1, 0.1)] * 2, [])


def test_vector_for_assistant_turn_rejected() -> None:
    conversation = _conversation()

    with pytest.raises(ValueError, match="turn 1.*customer turns only"):
        ConversationFeatures().customer_turn_vector(1, conversation, _signals(1, 0.1, 0.1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("HELLO", 1.0), ("Hello", 0.2), ("1234 !!", 0.0), ("", 0.0)],
)
def test_uppercase_ratio(text: str, expected: float) -> None:
    assert uppercase_ratio(text) == pytest.approx(expected)


# ------------------------------------------------------------------ turn sequence features

from serving.features import (  # noqa: E402
    TURN_CONTEXT_FEATURE_NAMES,
    TURN_TEXT_BLOCKS,
    TurnSequenceFeatures,
    TurnSequenceState,
    conversation_turn_rows,
    turn_feature_names,
)
from serving.schema import Role, Turn  # noqa: E402

TEXT_WIDTH = 6


def _text(columns: list[int], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    vector = np.asarray(values, dtype=np.float32)
    return np.asarray(columns, dtype=np.int64), vector / np.linalg.norm(vector)


def _turn_conversation() -> tuple[Conversation, list[tuple[np.ndarray, np.ndarray]]]:
    conversation = Conversation.model_validate({
        "id": "turn-sequence-case",
        "turns": [
            {"role": "customer", "text": "w1 w2"},
            {"role": "assistant", "text": "w3 w4 w5"},
            {"role": "customer", "text": "w1 w2"},
            {"role": "assistant", "text": "w3 w4 w5"},
            {"role": "customer", "text": ""},
        ],
    })
    vectors = [_text([0, 1], [1.0, 1.0]), _text([2, 3, 4], [1.0, 2.0, 1.0]),
               _text([0, 1], [1.0, 1.0]), _text([2, 3, 4], [1.0, 2.0, 1.0]),
               (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))]
    return conversation, vectors


def _context(row: np.ndarray, name: str) -> float:
    return float(row[TURN_CONTEXT_FEATURE_NAMES.index(name)])


def test_turn_feature_names_layout() -> None:
    names = turn_feature_names(TEXT_WIDTH)

    assert len(names) == len(TURN_CONTEXT_FEATURE_NAMES) + len(TURN_TEXT_BLOCKS) * TEXT_WIDTH
    assert len(set(names)) == len(names)
    assert names[len(TURN_CONTEXT_FEATURE_NAMES)] == "text_customer_00000"
    assert names[-1] == f"history_text_assistant_{TEXT_WIDTH - 1:05d}"


def test_turn_rows_repeat_of_bot_answer() -> None:
    conversation, vectors = _turn_conversation()
    rows = [row.to_dense() for row in conversation_turn_rows(conversation, vectors, TEXT_WIDTH)]

    assert _context(rows[1], "assistant_repeat_exact") == 0.0
    assert _context(rows[3], "assistant_repeat_exact") == 1.0
    assert _context(rows[3], "assistant_repeat_similarity_max") == pytest.approx(1.0, abs=1e-6)
    assert _context(rows[3], "assistant_repeat_count") == 1.0
    assert _context(rows[2], "customer_repeat_count") == 1.0
    assert _context(rows[4], "customer_assistant_repeats") == 1.0
    assert _context(rows[4], "customer_customer_repeats") == 1.0


def test_turn_rows_split_by_side() -> None:
    conversation, vectors = _turn_conversation()
    rows = [row.to_dense() for row in conversation_turn_rows(conversation, vectors, TEXT_WIDTH)]
    base = len(TURN_CONTEXT_FEATURE_NAMES)

    assert _context(rows[0], "is_customer") == 1.0
    assert _context(rows[1], "is_customer") == 0.0
    assert not any(rows[1][TURN_CONTEXT_FEATURE_NAMES.index(name)]
                   for name in TURN_CONTEXT_FEATURE_NAMES if name.startswith("customer_"))
    assert np.allclose(rows[1][base + TEXT_WIDTH:base + 2 * TEXT_WIDTH][2:5],
                       vectors[1][1])
    assert not rows[1][base:base + TEXT_WIDTH].any()


def test_turn_rows_carry_previous_text() -> None:
    conversation, vectors = _turn_conversation()
    rows = [row.to_dense() for row in conversation_turn_rows(conversation, vectors, TEXT_WIDTH)]
    previous_customer = len(TURN_CONTEXT_FEATURE_NAMES) + 2 * TEXT_WIDTH

    assert not rows[0][previous_customer:].any()
    assert np.allclose(rows[1][previous_customer:previous_customer + 2],
                       0.5 * vectors[0][1])


def test_turn_rows_carry_text_history() -> None:
    conversation, vectors = _turn_conversation()
    rows = [row.to_dense() for row in conversation_turn_rows(conversation, vectors, TEXT_WIDTH)]
    history_customer = len(TURN_CONTEXT_FEATURE_NAMES) + 4 * TEXT_WIDTH
    history_assistant = history_customer + TEXT_WIDTH

    assert not rows[0][history_customer:].any()
    # Before turn 2 come one customer and one assistant turn, so each side's history is
    # that turn's vector.
    expected = np.concatenate([vectors[0][1], vectors[1][1]])
    expected = 0.5 * expected / np.linalg.norm(expected)
    assert np.allclose(rows[2][history_customer:history_customer + 2], expected[:2])
    assert np.allclose(rows[2][history_assistant + 2:history_assistant + 5], expected[2:])
    # Before turn 4 come the same customer text twice and the same bot answer twice. Summing
    # keeps the direction, so the normalised history equals the one of turn 2.
    assert np.allclose(rows[4][history_customer:], rows[2][history_customer:], atol=1e-6)
    assert np.linalg.norm(rows[3][history_customer:]) == pytest.approx(0.5, abs=1e-6)


def test_turn_rows_ignore_later_turns() -> None:
    conversation, vectors = _turn_conversation()
    full = conversation_turn_rows(conversation, vectors, TEXT_WIDTH)
    shorter = Conversation.model_validate({
        "id": conversation.id,
        "turns": [turn.model_dump(mode="json", exclude_none=True)
                  for turn in conversation.turns[:3]],
    })
    prefix = conversation_turn_rows(shorter, vectors[:3], TEXT_WIDTH)

    for whole, part in zip(full[:3], prefix, strict=True):
        assert np.array_equal(whole.to_dense(), part.to_dense())


def test_turn_state_round_trip_continues_identically() -> None:
    conversation, vectors = _turn_conversation()
    builder = TurnSequenceFeatures(TEXT_WIDTH)
    for turn, (columns, values) in zip(conversation.turns[:3], vectors[:3], strict=True):
        builder.turn_row(turn, columns, values)
    restored = TurnSequenceFeatures(
        TEXT_WIDTH, TurnSequenceState.from_dict(builder.state.to_dict()))

    turn = conversation.turns[3]
    expected = builder.turn_row(turn, *vectors[3]).to_dense()
    assert np.array_equal(restored.turn_row(turn, *vectors[3]).to_dense(), expected)


def test_turn_row_rejects_out_of_range_column() -> None:
    builder = TurnSequenceFeatures(TEXT_WIDTH)
    turn = Turn(role=Role.CUSTOMER, text="w1")

    with pytest.raises(ValueError, match="columns in"):
        builder.turn_row(turn, np.asarray([TEXT_WIDTH]), np.asarray([1.0]))


def test_turn_rows_reject_vector_count_mismatch() -> None:
    conversation, vectors = _turn_conversation()

    with pytest.raises(ValueError, match="5 turns but 4 text vectors"):
        conversation_turn_rows(conversation, vectors[:4], TEXT_WIDTH)
