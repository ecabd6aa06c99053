"""Tests of the prediction log store on a SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from serving.decision import Decision, DecisionThresholds, decide
from serving.errors import StoreError
from serving.rules import RuleMatch
from serving.schema import Role
from serving.store import (
    DEFAULT_DATABASE_URL,
    Outcome,
    PredictionLog,
    create_store_engine,
    current_revision,
    database_url,
    head_revision,
    parse_database_url,
    upgrade_database,
)
from serving.store.tables import metadata
from serving.tiers import Reason, Tier

POSTGRES_URL = os.environ.get(
    "ESCALATION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Every schema this test session creates starts with this prefix and is dropped at the end.
SESSION_SCHEMA_PREFIX = f"escalation_test_{uuid.uuid4().hex[:10]}"
_schema_numbers = itertools.count(1)

STORE_TABLES = {"scored_turns", "routing_results", "handoff_packages", "outcomes", "outbox",
                "dead_letters"}
BACKENDS = ["sqlite", "postgresql"]


# ------------------------------------------------------------------------------ databases


@functools.cache
def postgres_unreachable_reason() -> str | None:
    """Return why the test PostgreSQL server cannot be used, or None when it can."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except OperationalError as error:
        return (f"PostgreSQL at {POSTGRES_URL} is unreachable ({error.orig}); start it or set "
                "ESCALATION_TEST_POSTGRES_URL")
    finally:
        engine.dispose()


@contextmanager
def empty_database(backend: str, folder: Path) -> Iterator[str]:
    """Yield the URL of an empty database: a new SQLite file or a new PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'escalation.db'}"
        return

    reason = postgres_unreachable_reason()
    if reason is not None:
        pytest.skip(reason)
    schema = f"{SESSION_SCHEMA_PREFIX}_{next(_schema_numbers)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database on each backend."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(empty_url: str) -> Iterator[Engine]:
    """Engine on a database migrated to head."""
    upgrade_database(empty_url)
    store_engine = create_store_engine(empty_url)
    yield store_engine
    store_engine.dispose()


@pytest.fixture
def log(engine: Engine) -> PredictionLog:
    """Prediction log on a migrated database, storing no message text."""
    return PredictionLog(engine)


# ------------------------------------------------------------------------------ helpers

THRESHOLDS = DecisionThresholds(escalation=0.6, prepare=0.4)
SENTIMENT = {"negative": 0.7, "neutral": 0.2, "positive": 0.1}
TEXT = "My card was charged twice and I want a refund now!"


def billing_match(turn_index: int) -> RuleMatch:
    return RuleMatch(rule="billing_dispute", tier=Tier.IMMEDIATE, reason=Reason.BILLING,
                     turn_index=turn_index, description="billing-dispute language",
                     span=(3, 7), matched_text="charged twice", values={"count": 1})


def billing_decision(turn_index: int) -> Decision:
    return decide(0.82, turn_index, [billing_match(turn_index)], THRESHOLDS)


def record_billing_turn(log: PredictionLog, conversation_id: str, turn_index: int = 2) -> int:
    return log.record_turn(
        conversation_id,
        turn_index=turn_index,
        role=Role.CUSTOMER,
        text=TEXT,
        bundle="escalation-test",
        escalation_probability=0.82,
        sentiment=SENTIMENT,
        frustration=0.66,
        decision=billing_decision(turn_index),
        rule_matches=[billing_match(turn_index)],
        latency_ms=12.5,
    )


def enqueue_events(log: PredictionLog, count: int, url: str = "http://127.0.0.1:9/hook"
                   ) -> list[str]:
    event_ids: list[str] = []
    for number in range(count):
        event_ids += log.enqueue_event("conversation.escalated", f"conv-{number}",
                                       {"number": number}, [url])
    return event_ids


# ------------------------------------------------------------------------------ migrations


def test_upgrade_creates_every_table(empty_url: str) -> None:
    revision = upgrade_database(empty_url)

    engine = create_store_engine(empty_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert revision == head_revision()
    assert STORE_TABLES <= tables
    assert "alembic_version" in tables


def test_upgrade_twice_keeps_rows(empty_url: str) -> None:
    upgrade_database(empty_url)
    engine = create_store_engine(empty_url)
    try:
        record_billing_turn(PredictionLog(engine), "conv-kept")

        second = upgrade_database(engine)

        assert second == head_revision()
        assert len(PredictionLog(engine).turns_for("conv-kept")) == 1
    finally:
        engine.dispose()


def test_migrations_match_table_definitions(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)

    assert differences == []


def test_concurrent_upgrades_all_reach_head(empty_url: str) -> None:
    barrier = threading.Barrier(3)
    revisions: list[str | None] = []
    errors: list[BaseException] = []

    def upgrade() -> None:
        barrier.wait()
        try:
            revisions.append(upgrade_database(empty_url))
        except StoreError as error:
            errors.append(error)

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert revisions == [head_revision()] * 3


def test_current_revision_none_before_upgrade(empty_url: str) -> None:
    engine = create_store_engine(empty_url)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ URLs


def test_database_url_defaults_to_sqlite_under_var() -> None:
    assert database_url({}) == DEFAULT_DATABASE_URL
    assert DEFAULT_DATABASE_URL.endswith("/var/escalation.db")


def test_database_url_reads_environment() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

    assert database_url({"DATABASE_URL": url}) == url


def test_parse_url_picks_psycopg_driver() -> None:
    parsed = parse_database_url("postgres://user@127.0.0.1:5432/test")

    assert parsed.drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@127.0.0.1/x",
                                 "not a url"])
def test_parse_url_rejects_unsupported(url: str) -> None:
    with pytest.raises(StoreError):
        parse_database_url(url)


def test_sqlite_engine_creates_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "var" / "escalation.db"

    upgrade_database(f"sqlite:///{path}")

    assert path.is_file()


# ------------------------------------------------------------------------------ scored turns


def test_record_turn_round_trip(log: PredictionLog) -> None:
    row_id = record_billing_turn(log, "conv-turn")

    [turn] = log.turns_for("conv-turn")
    assert turn.id == row_id
    assert turn.turn_index == 2
    assert turn.role == "customer"
    assert turn.bundle == "escalation-test"
    assert turn.escalation_probability == pytest.approx(0.82)
    assert turn.sentiment == pytest.approx(SENTIMENT)
    assert turn.frustration == pytest.approx(0.66)
    assert turn.tier is Tier.IMMEDIATE
    assert turn.escalate is True
    assert turn.prepare_agent is False
    assert turn.reason_category == "billing"
    assert turn.escalation_threshold == pytest.approx(0.6)
    assert turn.prepare_threshold == pytest.approx(0.4)
    assert turn.latency_ms == pytest.approx(12.5)


def test_record_turn_stores_reasons_and_matches(log: PredictionLog) -> None:
    record_billing_turn(log, "conv-reasons")

    [turn] = log.turns_for("conv-reasons")
    assert [reason["code"] for reason in turn.reasons] == ["billing_dispute",
                                                          "escalation_probability"]
    assert turn.rule_matches == [billing_match(2).to_dict()]


def test_record_turn_stores_hash_not_text(log: PredictionLog) -> None:
    record_billing_turn(log, "conv-private")

    [turn] = log.turns_for("conv-private")
    assert turn.text is None
    assert turn.text_sha256 == hashlib.sha256(TEXT.encode("utf-8")).hexdigest()
    assert turn.text_length == len(TEXT)


def test_record_turn_stores_text_when_enabled(engine: Engine) -> None:
    log = PredictionLog(engine, store_text=True)

    record_billing_turn(log, "conv-text")

    assert log.turns_for("conv-text")[0].text == TEXT


def test_record_turn_without_sentiment(log: PredictionLog) -> None:
    log.record_turn("conv-agent", turn_index=3, role="agent", text="Let me check.",
                    bundle="escalation-test", escalation_probability=0.1, sentiment=None,
                    frustration=None, decision=decide(0.1, 3, [], THRESHOLDS), rule_matches=[])

    [turn] = log.turns_for("conv-agent")
    assert turn.sentiment is None
    assert turn.frustration is None
    assert turn.tier is Tier.NONE


def test_record_turn_rejects_partial_sentiment(log: PredictionLog) -> None:
    with pytest.raises(ValueError, match="sentiment"):
        log.record_turn("conv-bad", turn_index=0, role="customer", text="hi",
                        bundle="b", escalation_probability=0.1,
                        sentiment={"negative": 1.0}, frustration=0.0,
                        decision=decide(0.1, 0, [], THRESHOLDS), rule_matches=[])


def test_turns_come_back_in_turn_order(log: PredictionLog) -> None:
    for turn_index in (4, 0, 2):
        record_billing_turn(log, "conv-order", turn_index)

    assert [turn.turn_index for turn in log.turns_for("conv-order")] == [0, 2, 4]


def test_timestamps_read_back_as_utc(log: PredictionLog) -> None:
    moment = datetime(2025, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    log.record_outcome(Outcome("conv-time", escalated=False, resolved=True, recorded_at=moment))

    outcome = log.outcome_for("conv-time")
    assert outcome is not None
    assert outcome.recorded_at == moment
    assert outcome.recorded_at.tzinfo == UTC


def test_naive_timestamp_rejected(log: PredictionLog) -> None:
    with pytest.raises(StoreError, match="naive datetime"):
        log.record_handoff("conv-naive", package_id="pkg-naive", package={},
                           created_at=datetime(2025, 1, 1))


# ------------------------------------------------------------- routing, handoffs, outcomes


def test_record_routing_round_trip(log: PredictionLog) -> None:
    payload = {"status": "queued", "team": "billing", "candidates": ["a-1", "a-2"]}
    log.record_routing("conv-route", status="queued", payload=payload, rule="reason:billing",
                       team="billing", level="L2", queue_position=3,
                       estimated_wait_seconds=95.0, overflowed=True, overflow_from="general")

    [routing] = log.routing_for("conv-route")
    assert routing.status == "queued"
    assert routing.rule == "reason:billing"
    assert routing.team == "billing"
    assert routing.agent is None
    assert routing.level == "L2"
    assert routing.queue_position == 3
    assert routing.estimated_wait_seconds == pytest.approx(95.0)
    assert routing.overflowed is True
    assert routing.overflow_from == "general"
    assert routing.payload == payload


def test_record_handoff_round_trip(log: PredictionLog) -> None:
    package = {"summary": "double charge", "tier": Tier.IMMEDIATE,
               "created": datetime(2025, 1, 1, tzinfo=UTC)}
    log.record_handoff("conv-handoff", package_id="pkg-1", package=package)

    [handoff] = log.handoffs_for("conv-handoff")
    assert handoff.package_id == "pkg-1"
    assert handoff.package == {"summary": "double charge", "tier": "immediate",
                               "created": "2025-01-01T00:00:00+00:00"}


def test_record_handoff_duplicate_package_rejected(log: PredictionLog) -> None:
    log.record_handoff("conv-dup", package_id="pkg-dup", package={})

    with pytest.raises(StoreError, match="pkg-dup"):
        log.record_handoff("conv-dup", package_id="pkg-dup", package={})


def test_record_handoff_rejects_non_json(log: PredictionLog) -> None:
    with pytest.raises(ValueError, match="package cannot be stored as JSON"):
        log.record_handoff("conv-json", package_id="pkg-json", package={"x": float("nan")})


def test_outcome_round_trip(log: PredictionLog) -> None:
    outcome = Outcome("conv-outcome", escalated=True, resolved=True, csat=4, agent_id="agent-7",
                      handle_seconds=312.0, recorded_at=datetime(2025, 2, 1, tzinfo=UTC),
                      notes="refunded")
    log.record_outcome(outcome)

    assert log.outcome_for("conv-outcome") == outcome


def test_outcome_latest_record_wins(log: PredictionLog) -> None:
    first = datetime(2025, 2, 1, tzinfo=UTC)
    log.record_outcome(Outcome("conv-late", escalated=True, resolved=False, recorded_at=first))
    log.record_outcome(Outcome("conv-late", escalated=True, resolved=True, csat=5,
                               recorded_at=first + timedelta(days=1)))

    outcome = log.outcome_for("conv-late")
    assert outcome is not None
    assert outcome.resolved is True
    assert outcome.csat == 5


def test_outcome_missing_is_none(log: PredictionLog) -> None:
    assert log.outcome_for("conv-unknown") is None


@pytest.mark.parametrize("csat", [0, 6])
def test_outcome_csat_out_of_range_rejected(csat: int) -> None:
    with pytest.raises(ValueError, match="csat"):
        Outcome("conv-csat", escalated=False, resolved=True, csat=csat)


# ------------------------------------------------------------------------------ outbox


def test_enqueue_event_one_row_per_url(log: PredictionLog) -> None:
    urls = ["http://127.0.0.1:9/a", "https://127.0.0.1:9/b"]

    event_ids = log.enqueue_event("conversation.escalated", "conv-fan", {"x": 1}, urls,
                                  idempotency_key="key-fan")

    events = log.events_for("conv-fan")
    assert len(set(event_ids)) == 2
    assert {event.event_id: event.target_url for event in events} == dict(zip(event_ids, urls,
                                                                             strict=True))
    assert {event.idempotency_key for event in events} == {"key-fan"}
    assert {event.status for event in events} == {"pending"}
    assert json.loads(events[0].body) == {"x": 1}


def test_enqueue_same_key_adds_nothing(log: PredictionLog) -> None:
    url = "http://127.0.0.1:9/a"
    first = log.enqueue_event("conversation.escalated", "conv-again", {"v": 1}, [url],
                              idempotency_key="key-again")

    second = log.enqueue_event("conversation.escalated", "conv-again", {"v": 2}, [url],
                               idempotency_key="key-again")

    assert second == first
    assert log.pending_count() == 1
    assert json.loads(log.events_for("conv-again")[0].body) == {"v": 1}


def test_enqueue_without_urls_adds_nothing(log: PredictionLog) -> None:
    assert log.enqueue_event("conversation.escalated", "conv-none", {}, []) == []
    assert log.pending_count() == 0


def test_enqueue_rejects_non_http_url(log: PredictionLog) -> None:
    with pytest.raises(ValueError, match="ftp://"):
        log.enqueue_event("conversation.escalated", "conv-ftp", {}, ["ftp://127.0.0.1/x"])


def test_transaction_commits_turn_and_event_together(log: PredictionLog) -> None:
    with log.transaction() as unit:
        record_billing_turn(unit, "conv-unit")
        unit.enqueue_event("conversation.escalated", "conv-unit", {}, ["http://127.0.0.1:9/a"])

    assert len(log.turns_for("conv-unit")) == 1
    assert log.pending_count() == 1


def test_transaction_rolls_back_turn_and_event(log: PredictionLog) -> None:
    with pytest.raises(RuntimeError), log.transaction() as unit:
        record_billing_turn(unit, "conv-rollback")
        unit.enqueue_event("conversation.escalated", "conv-rollback", {},
                           ["http://127.0.0.1:9/a"])
        raise RuntimeError("decision failed after the writes")

    assert log.turns_for("conv-rollback") == []
    assert log.pending_count() == 0


def test_claim_skips_events_not_yet_due(log: PredictionLog) -> None:
    now = datetime.now(UTC)
    log.enqueue_event("conversation.escalated", "conv-later", {}, ["http://127.0.0.1:9/a"],
                      now=now + timedelta(minutes=5))

    assert log.claim_due_events(now, 10) == []


def test_claim_leases_and_counts_attempt(log: PredictionLog) -> None:
    [event_id] = log.enqueue_event("conversation.escalated", "conv-lease", {},
                                   ["http://127.0.0.1:9/a"])
    now = datetime.now(UTC)

    [claimed] = log.claim_due_events(now, 10, lease_seconds=30)

    assert claimed.event_id == event_id
    assert claimed.attempts == 1
    assert claimed.next_attempt_at == now + timedelta(seconds=30)
    assert log.claim_due_events(now + timedelta(seconds=29), 10) == []
    assert len(log.claim_due_events(now + timedelta(seconds=31), 10)) == 1


def test_claim_returns_oldest_first_up_to_limit(log: PredictionLog) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    for number in (2, 0, 1):
        log.enqueue_event("conversation.escalated", f"conv-{number}", {},
                          ["http://127.0.0.1:9/a"], now=start + timedelta(seconds=number))

    claimed = log.claim_due_events(limit=2)

    assert [event.conversation_id for event in claimed] == ["conv-0", "conv-1"]


def test_concurrent_claims_never_overlap(engine: Engine, empty_url: str) -> None:
    event_ids = enqueue_events(PredictionLog(engine), 120)
    barrier = threading.Barrier(2)
    claimed: dict[int, list[str]] = {0: [], 1: []}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        worker_engine = create_store_engine(empty_url)
        worker_log = PredictionLog(worker_engine)
        barrier.wait()
        try:
            while batch := worker_log.claim_due_events(limit=5):
                claimed[worker] += [event.event_id for event in batch]
        except StoreError as error:
            errors.append(error)
        finally:
            worker_engine.dispose()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    everything = claimed[0] + claimed[1]
    assert errors == []
    assert set(claimed[0]).isdisjoint(claimed[1])
    assert len(everything) == len(set(everything))
    assert sorted(everything) == sorted(event_ids)


def test_mark_delivered_sets_status(log: PredictionLog) -> None:
    [event_id] = enqueue_events(log, 1)
    log.claim_due_events()

    assert log.mark_delivered(event_id, status_code=204) is True

    event = log.event(event_id)
    assert event is not None
    assert event.status == "delivered"
    assert event.delivered_at is not None
    assert event.last_status_code == 204
    assert log.pending_count() == 0


def test_mark_retry_reschedules(log: PredictionLog) -> None:
    [event_id] = enqueue_events(log, 1)
    log.claim_due_events()
    later = datetime.now(UTC) + timedelta(minutes=2)

    log.mark_retry(event_id, next_attempt_at=later, error="HTTP 503", status_code=503)

    event = log.event(event_id)
    assert event is not None
    assert event.status == "pending"
    assert event.next_attempt_at == later
    assert event.last_error == "HTTP 503"
    assert event.attempts == 1


def test_mark_dead_writes_dead_letter(log: PredictionLog) -> None:
    [event_id] = enqueue_events(log, 1)
    log.claim_due_events()

    assert log.mark_dead(event_id, error="HTTP 410 Gone", status_code=410) is True

    [letter] = log.dead_letters()
    event = log.event(event_id)
    assert event is not None
    assert event.status == "dead"
    assert letter.event_id == event_id
    assert letter.error == "HTTP 410 Gone"
    assert letter.status_code == 410
    assert letter.attempts == 1
    assert letter.body == event.body
    assert log.pending_count() == 0


def test_mark_on_finished_event_changes_nothing(log: PredictionLog) -> None:
    [event_id] = enqueue_events(log, 1)
    log.mark_delivered(event_id)

    assert log.mark_dead(event_id, error="late failure") is False
    assert log.mark_retry(event_id, next_attempt_at=datetime.now(UTC), error="late") is False
    assert log.dead_letters() == []
