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
