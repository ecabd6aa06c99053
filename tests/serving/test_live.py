"""Tests of incremental scoring and of the state stores, in process and in a real Redis."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from pipelines.train.config import load_train_config
from pipelines.train.data import load_training_data
from serving.live import apply_turn, hand_back, new_state
from serving.schema import Conversation, Turn
from serving.scorer import Scorer
from serving.state import InProcessStateStore, LiveState, RedisStateStore
from tests.conftest import TrainedBundle

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def scorer(trained_bundle: TrainedBundle) -> Scorer:
    return Scorer(trained_bundle.path)


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    return load_training_data(seed=load_train_config().seed).conversations["test"][:5]


def _replay(scorer: Scorer, conversation: Conversation) -> tuple[LiveState, list[float]]:
    state = new_state(conversation.id, started_at=conversation.started_at,
                      customer=conversation.customer)
    probabilities = []
    for turn in conversation.turns:
        result = apply_turn(scorer, state, turn)
        if result.sentiment is not None:
            probabilities.append(result.escalation_probability)
    return state, probabilities


def test_incremental_equals_whole_conversation(
    scorer: Scorer, conversations: list[Conversation]
) -> None:
    for conversation in conversations:
        _, incremental = _replay(scorer, conversation)
        whole = [turn.escalation_probability for turn in scorer.score(conversation).turns]

        np.testing.assert_allclose(incremental, whole, rtol=0, atol=1e-6)


def test_final_decision_matches_batch(scorer: Scorer, conversations: list[Conversation]) -> None:
    conversation = conversations[0]
    state, _ = _replay(scorer, conversation)

    batch = scorer.score(conversation).decision.to_dict()
    assert state.last_decision == batch


def test_state_json_round_trip_continues_identically(
    scorer: Scorer, conversations: list[Conversation]
) -> None:
    conversation = conversations[1]
    middle = len(conversation.turns) // 2
    state = new_state(conversation.id)
    for turn in conversation.turns[:middle]:
        apply_turn(scorer, state, turn)
    restored = LiveState.from_json(state.to_json())

    for turn in conversation.turns[middle:]:
        expected = apply_turn(scorer, state, turn).to_dict()
        actual = apply_turn(scorer, restored, turn).to_dict()
        assert actual == expected


def test_handback_suppresses_fired_signals(scorer: Scorer) -> None:
    state = new_state("handback-case")
    turns = [
        Turn(role="customer", text="This is urgent, my payments are failing"),
        Turn(role="assistant", text="I am handing you to a colleague.", confidence=0.9),
        Turn(role="agent", text="Hi, I fixed the payment settings for you."),
        Turn(role="assistant", text="Anything else I can help with?", confidence=0.9),
        Turn(role="customer", text="It is still urgent but thanks"),
    ]
    results = [apply_turn(scorer, state, turn) for turn in turns]

    assert results[0].newly_escalated is True
    assert state.suppressed_rules == ["urgent_keyword"]
    assert results[4].decision.tier.value in {"none", "rapid"}
    assert not any(reason.code == "urgent_keyword" for reason in results[4].decision.reasons)


def test_new_signal_after_handback_escalates(scorer: Scorer) -> None:
    state = new_state("handback-new-signal")
    for turn in [
        Turn(role="customer", text="This is urgent"),
        Turn(role="agent", text="Done, handing you back."),
        Turn(role="assistant", text="Anything else?", confidence=0.95),
    ]:
        apply_turn(scorer, state, turn)
    result = apply_turn(scorer, state, Turn(role="customer", text="I want a refund now"))

    assert state.status == "escalated"
    assert result.newly_escalated is True
    assert any(reason.code == "billing_dispute" for reason in result.decision.reasons)


def test_explicit_hand_back_only_when_escalated() -> None:
    state = new_state("not-escalated")
    hand_back(state)

    assert state.status == "active"


def test_in_process_store_evicts_least_recent() -> None:
    store = InProcessStateStore(capacity=2)
    for name in ("a", "b", "c"):
        store.put(new_state(name))

    assert store.get("a") is None
    assert store.get("c") is not None
    assert store.size() == 2


def test_in_process_store_expires_idle_state() -> None:
    now = [0.0]
    store = InProcessStateStore(capacity=10, ttl_seconds=60, clock=lambda: now[0])
    store.put(new_state("idle"))
    now[0] = 61.0

    assert store.get("idle") is None


@pytest.fixture()
def redis_store() -> RedisStateStore:
    store = RedisStateStore(REDIS_URL, ttl_seconds=300, prefix=f"test-{uuid.uuid4().hex}")
    if not store.ping():
        pytest.skip("no Redis at 127.0.0.1:6379; start redis-server to run this test")
    yield store
    for key in store.client.scan_iter(match=f"{store.prefix}:*"):
        store.client.delete(key)


def test_redis_store_round_trip(redis_store: RedisStateStore, scorer: Scorer,
                                conversations: list[Conversation]) -> None:
    conversation = conversations[2]
    state = new_state(conversation.id)
    for turn in conversation.turns[:4]:
        apply_turn(scorer, state, turn)
        redis_store.append_turn(conversation.id, turn.model_dump(mode="json"))
    redis_store.put(state)

    loaded = redis_store.get(conversation.id)
    assert loaded is not None
    assert loaded.to_json() == state.to_json()
    assert len(redis_store.turns(conversation.id)) == 4
    assert redis_store.size() == 1


def test_redis_state_continues_in_new_worker(redis_store: RedisStateStore, scorer: Scorer,
                                             conversations: list[Conversation]) -> None:
    conversation = conversations[3]
    reference = new_state(conversation.id)
    expected = [apply_turn(scorer, reference, turn).to_dict() for turn in conversation.turns]

    first_worker = RedisStateStore(REDIS_URL, prefix=redis_store.prefix)
    state = new_state(conversation.id)
    middle = len(conversation.turns) // 2
    for turn in conversation.turns[:middle]:
        apply_turn(scorer, state, turn)
    first_worker.put(state)

    second_worker = RedisStateStore(REDIS_URL, prefix=redis_store.prefix)
    resumed = second_worker.get(conversation.id)
    assert resumed is not None
    actual = [apply_turn(scorer, resumed, turn).to_dict() for turn in conversation.turns[middle:]]
    assert actual == expected[middle:]
