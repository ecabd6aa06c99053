"""PredictionLog: writes and reads scored turns, routing, handoffs, outcomes and the outbox.

Each method runs in its own transaction unless it is called on the log yielded by
`PredictionLog.transaction()`, which records everything into one transaction: a decision and
the outbox rows of its webhook events then commit together or not at all.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from serving.decision import Decision
from serving.errors import StoreError
from serving.rules import RuleMatch
from serving.schema import Role, Sentiment
from serving.store.records import (
    DeadLetter,
    OutboxEvent,
    Outcome,
    StoredHandoff,
    StoredRouting,
    StoredTurn,
    check_id,
    utc_now,
)
from serving.store.tables import (
    EVENT_TYPE_CHARS,
    URL_CHARS,
    dead_letters,
    handoff_packages,
    outbox,
    outcomes,
    routing_results,
    scored_turns,
)
from serving.tiers import Tier

DEFAULT_LEASE_SECONDS = 120.0


class PredictionLog:
    """Writes and reads the prediction log, the outcomes and the webhook outbox.

    The schema must be at head: call `serving.store.upgrade_database` at start-up first.
    Message text is personal data, so only its sha256 and length are stored unless
    `store_text` is True. Invalid arguments raise ValueError, and database failures raise
    StoreError naming the operation. One log may be shared by threads, but a log yielded by
    `transaction()` belongs to the thread that opened it.
    """

    def __init__(self, engine: Engine, *, store_text: bool = False) -> None:
        self.engine = engine
        self.store_text = store_text
        self._connection: Connection | None = None

    # -- transactions

    @contextmanager
    def transaction(self) -> Iterator[PredictionLog]:
        """Open one transaction and yield a log that records into it.

        The transaction commits when the block ends and rolls back when it raises. Inside a
        transaction this yields the same log, so the calls join the outer transaction.
        """
        if self._connection is not None:
            yield self
            return

        with self._begin("the transaction") as connection:
            bound = copy.copy(self)
            bound._connection = connection
            yield bound

    @contextmanager
    def _begin(self, action: str) -> Iterator[Connection]:
        try:
            if self._connection is not None:
                yield self._connection
                return
            with self.engine.begin() as connection:
                yield connection
        except SQLAlchemyError as error:
            safe_url = self.engine.url.render_as_string(hide_password=True)
            raise StoreError(
                f"{action} failed on the prediction log {safe_url}: {error}"
            ) from error

    # -- prediction log

    def record_turn(
        self,
        conversation_id: str,
        *,
        turn_index: int,
        role: Role | str,
        text: str,
        bundle: str,
        escalation_probability: float,
        sentiment: Mapping[str, float] | None,
        frustration: float | None,
        decision: Decision,
        rule_matches: Sequence[RuleMatch],
        latency_ms: float | None = None,
        created_at: datetime | None = None,
        turn_payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Record one scored turn and return its row id.

        `turn_payload` is the validated turn as JSON, with the conversation header on the first
        turn. Like the text, it is kept only when the log stores text.

        `sentiment` maps negative/neutral/positive to probabilities, and it and `frustration`
        are None for turns the heads did not score. `rule_matches` are the matches that fired at
        this turn; the decision's reasons also carry those of earlier turns.
        """
        check_id("conversation_id", conversation_id)
        if turn_index < 0:
            raise ValueError(f"turn_index is {turn_index}; it must be >= 0")
        sentiment_values = _sentiment_columns(sentiment)

        values = {
            "conversation_id": conversation_id,
            "turn_index": turn_index,
            "role": Role(role).value,
            "bundle": bundle,
            "created_at": created_at or utc_now(),
            "escalation_probability": float(escalation_probability),
            **sentiment_values,
            "frustration": None if frustration is None else float(frustration),
            "tier": decision.tier.value,
            "escalate": decision.escalate,
            "prepare_agent": decision.prepare_agent,
            "reason_category": decision.reason_category.value if decision.reason_category
            else None,
            "reasons": _plain_json("reasons", [reason.to_dict() for reason in decision.reasons]),
            "rule_matches": _plain_json("rule_matches",
                                        [match.to_dict() for match in rule_matches]),
            "escalation_threshold": decision.thresholds.escalation,
            "prepare_threshold": decision.thresholds.prepare,
            "latency_ms": latency_ms,
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "text_length": len(text),
            "text": text if self.store_text else None,
            "turn": _plain_json("turn", turn_payload)
            if self.store_text and turn_payload is not None else None,
        }
        action = f"recording turn {turn_index} of conversation {conversation_id!r}"
        with self._begin(action) as connection:
            return _insert_returning_id(connection, scored_turns, values)

    def record_routing(
        self,
        conversation_id: str,
        *,
        status: str,
        payload: Mapping[str, Any],
        rule: str | None = None,
        team: str | None = None,
        agent: str | None = None,
        level: str | None = None,
        queue_position: int | None = None,
        estimated_wait_seconds: float | None = None,
        overflowed: bool = False,
        overflow_from: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Record one routing result and return its row id.

        The columns hold what dashboards filter on; `payload` keeps the whole result as JSON.
        """
        check_id("conversation_id", conversation_id)
        values = {
            "conversation_id": conversation_id,
            "created_at": created_at or utc_now(),
            "status": status,
            "rule": rule,
            "team": team,
            "agent": agent,
            "level": level,
            "queue_position": queue_position,
            "estimated_wait_seconds": estimated_wait_seconds,
            "overflowed": overflowed,
            "overflow_from": overflow_from,
            "payload": _plain_json("payload", payload),
        }
        with self._begin(f"recording routing of conversation {conversation_id!r}") as connection:
            return _insert_returning_id(connection, routing_results, values)

    def record_handoff(
        self,
        conversation_id: str,
        *,
        package_id: str,
        package: Mapping[str, Any],
        created_at: datetime | None = None,
    ) -> int:
        """Record one handoff package and return its row id; a package id may be recorded once."""
        check_id("conversation_id", conversation_id)
        check_id("package_id", package_id)
        values = {
            "conversation_id": conversation_id,
            "package_id": package_id,
            "created_at": created_at or utc_now(),
            "package": _plain_json("package", package),
        }
        action = f"recording handoff package {package_id!r} of conversation {conversation_id!r}"
        with self._begin(action) as connection:
            return _insert_returning_id(connection, handoff_packages, values)

    def record_outcome(self, outcome: Outcome) -> int:
        """Record how a conversation ended and return the row id; a later record supersedes."""
        values = {
            "conversation_id": outcome.conversation_id,
            "escalated": outcome.escalated,
            "resolved": outcome.resolved,
            "csat": outcome.csat,
            "agent_id": outcome.agent_id,
            "handle_seconds": outcome.handle_seconds,
            "recorded_at": outcome.recorded_at or utc_now(),
            "notes": outcome.notes,
        }
        action = f"recording the outcome of conversation {outcome.conversation_id!r}"
        with self._begin(action) as connection:
            return _insert_returning_id(connection, outcomes, values)

    # -- outbox

    def enqueue_event(
        self,
        event_type: str,
        conversation_id: str,
        body: Mapping[str, Any],
        urls: Sequence[str],
        *,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> list[str]:
        """Add one outbox row per target URL and return their event ids, in the order of `urls`.

        Every row gets `idempotency_key` (a new UUID when None). Enqueueing the same key for the
        same URL again adds nothing and returns the existing row's event id, so a retried
        request cannot send an event twice. The row keeps the body of the first enqueue.
        """
        check_id("conversation_id", conversation_id)
        _check_event_type(event_type)
        targets = list(dict.fromkeys(urls))
        for url in targets:
            _check_url(url)
        if not targets:
            return []

        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        check_id("idempotency_key", key)
        body_text = json.dumps(_plain_json("body", body), ensure_ascii=False,
                               separators=(",", ":"))
        created_at = now or utc_now()

        action = f"enqueueing {event_type} of conversation {conversation_id!r}"
        with self._begin(action) as connection:
            return [
                self._insert_event(connection, url, {
                    "idempotency_key": key,
                    "event_type": event_type,
                    "conversation_id": conversation_id,
                    "target_url": url,
                    "body": body_text,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": created_at,
                    "created_at": created_at,
                })
                for url in targets
            ]

    def _insert_event(self, connection: Connection, url: str, values: dict[str, Any]) -> str:
        dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" \
            else sqlite.insert
        statement = dialect_insert(outbox).values(event_id=str(uuid.uuid4()), **values)
        connection.execute(statement.on_conflict_do_nothing(
            index_elements=[outbox.c.idempotency_key, outbox.c.target_url]
        ))
        stored = select(outbox.c.event_id).where(
            outbox.c.idempotency_key == values["idempotency_key"], outbox.c.target_url == url
        )
        return str(connection.execute(stored).scalar_one())

    def claim_due_events(
        self,
        now: datetime | None = None,
        limit: int = 10,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> list[OutboxEvent]:
        """Claim up to `limit` pending events due at `now`, oldest first, for one delivery each.

        A claim counts an attempt and moves the event's next attempt `lease_seconds` ahead, so
        no other worker takes it while it is in flight. If the worker dies, the event is due
        again when the lease ends. On PostgreSQL the rows are selected with
        FOR UPDATE SKIP LOCKED, so concurrent workers claim disjoint events without waiting.
        On SQLite the claiming transaction holds the database's write lock.
        """
        if limit < 1:
            raise ValueError(f"limit is {limit}; it must be >= 1")
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds is {lease_seconds}; it must be > 0")
        now = now or utc_now()

        due = (
            select(outbox.c.event_id)
            .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at, outbox.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        lease_end = now + timedelta(seconds=lease_seconds)
        with self._begin("claiming due outbox events") as connection:
            event_ids = list(connection.execute(due).scalars())
            if not event_ids:
                return []
            connection.execute(
                update(outbox)
                .where(outbox.c.event_id.in_(event_ids))
                .values(next_attempt_at=lease_end, attempts=outbox.c.attempts + 1)
            )
            rows = connection.execute(
                select(outbox).where(outbox.c.event_id.in_(event_ids))
                .order_by(outbox.c.created_at, outbox.c.event_id)
            )
            return [_outbox_event(row) for row in rows]

    def mark_delivered(
        self, event_id: str, *, status_code: int | None = None, delivered_at: datetime | None = None
    ) -> bool:
        """Mark a pending event delivered; return False when it was no longer pending."""
        values = {"status": "delivered", "delivered_at": delivered_at or utc_now(),
                  "last_status_code": status_code}
        with self._begin(f"marking event {event_id} delivered") as connection:
            return _update_pending(connection, event_id, values)

    def mark_retry(
        self,
        event_id: str,
        *,
        next_attempt_at: datetime,
        error: str,
        status_code: int | None = None,
    ) -> bool:
        """Schedule the next attempt of a pending event after a failed one.

        Returns False when the event was no longer pending. The attempt itself was counted
        when the event was claimed.
        """
        values = {"next_attempt_at": next_attempt_at, "last_error": error,
                  "last_status_code": status_code}
        with self._begin(f"scheduling a retry of event {event_id}") as connection:
            return _update_pending(connection, event_id, values)

    def mark_dead(
        self,
        event_id: str,
        *,
        error: str,
        status_code: int | None = None,
        failed_at: datetime | None = None,
    ) -> bool:
        """Give up on a pending event: set it dead and copy it with `error` to dead_letters.

        Returns False, and writes nothing, when the event was no longer pending.
        """
        failed_at = failed_at or utc_now()
        with self._begin(f"moving event {event_id} to the dead letters") as connection:
            row = connection.execute(
                select(outbox).where(outbox.c.event_id == event_id,
                                     outbox.c.status == "pending")
                .with_for_update()
            ).one_or_none()
            if row is None:
                return False

            values = {"status": "dead", "last_error": error, "last_status_code": status_code}
            _update_pending(connection, event_id, values)
            connection.execute(dead_letters.insert().values(
                event_id=row.event_id,
                idempotency_key=row.idempotency_key,
                event_type=row.event_type,
                conversation_id=row.conversation_id,
                target_url=row.target_url,
                body=row.body,
                attempts=row.attempts,
                error=error,
                status_code=status_code,
                failed_at=failed_at,
            ))
            return True

    def pending_count(self) -> int:
        """Return how many events wait for delivery, due now or later."""
        query = select(func.count()).select_from(outbox).where(outbox.c.status == "pending")
        with self._begin("counting pending outbox events") as connection:
            return int(connection.execute(query).scalar_one())

    # -- reads for analysts and tests

    def turns_for(self, conversation_id: str) -> list[StoredTurn]:
        """Return the scored turns of a conversation in turn order."""
        query = (select(scored_turns).where(scored_turns.c.conversation_id == conversation_id)
                 .order_by(scored_turns.c.turn_index, scored_turns.c.id))
        with self._begin(f"reading turns of conversation {conversation_id!r}") as connection:
            return [_stored_turn(row) for row in connection.execute(query)]

    def transcript(self, conversation_id: str) -> list[dict[str, Any]]:
        """Return the stored turn payloads of a conversation in order, or [] when any is missing.

        Each item is {"turn": ..., "conversation": ... (first turn only), "escalated": bool}.
        A conversation logged without text cannot be rebuilt, so it returns [].
        """
        query = (select(scored_turns.c.turn_index, scored_turns.c.turn, scored_turns.c.escalate)
                 .where(scored_turns.c.conversation_id == conversation_id)
                 .order_by(scored_turns.c.turn_index, scored_turns.c.id))
        with self._begin(f"reading the transcript of {conversation_id!r}") as connection:
            rows = list(connection.execute(query))
        items: list[dict[str, Any]] = []
        for expected_index, row in enumerate(rows):
            if row.turn is None or row.turn_index != expected_index:
                return []
            items.append({**row.turn, "escalated": bool(row.escalate)})
        return items

    def routing_for(self, conversation_id: str) -> list[StoredRouting]:
        """Return the routing results of a conversation, oldest first."""
        query = (select(routing_results)
                 .where(routing_results.c.conversation_id == conversation_id)
                 .order_by(routing_results.c.created_at, routing_results.c.id))
        with self._begin(f"reading routing of conversation {conversation_id!r}") as connection:
            return [StoredRouting(**row._asdict()) for row in connection.execute(query)]

    def handoffs_for(self, conversation_id: str) -> list[StoredHandoff]:
        """Return the handoff packages of a conversation, oldest first."""
        query = (select(handoff_packages)
                 .where(handoff_packages.c.conversation_id == conversation_id)
                 .order_by(handoff_packages.c.created_at, handoff_packages.c.id))
        with self._begin(f"reading handoffs of conversation {conversation_id!r}") as connection:
            return [StoredHandoff(**row._asdict()) for row in connection.execute(query)]

    def outcome_for(self, conversation_id: str) -> Outcome | None:
        """Return the latest recorded outcome of a conversation, or None."""
        query = (select(outcomes).where(outcomes.c.conversation_id == conversation_id)
                 .order_by(outcomes.c.recorded_at.desc(), outcomes.c.id.desc()).limit(1))
        with self._begin(f"reading the outcome of conversation {conversation_id!r}") as connection:
            row = connection.execute(query).one_or_none()
        return None if row is None else Outcome(**_without_id(row))

    def event(self, event_id: str) -> OutboxEvent | None:
        """Return one outbox event by id, or None."""
        query = select(outbox).where(outbox.c.event_id == event_id)
        with self._begin(f"reading event {event_id}") as connection:
            row = connection.execute(query).one_or_none()
        return None if row is None else _outbox_event(row)

    def events_for(self, conversation_id: str) -> list[OutboxEvent]:
        """Return the outbox events of a conversation, oldest first."""
        query = (select(outbox).where(outbox.c.conversation_id == conversation_id)
                 .order_by(outbox.c.created_at, outbox.c.event_id))
        with self._begin(f"reading events of conversation {conversation_id!r}") as connection:
            return [_outbox_event(row) for row in connection.execute(query)]

    def dead_letters(self, conversation_id: str | None = None) -> list[DeadLetter]:
        """Return the dead letters, of one conversation when given, oldest first."""
        query = select(dead_letters).order_by(dead_letters.c.failed_at, dead_letters.c.id)
        if conversation_id is not None:
            query = query.where(dead_letters.c.conversation_id == conversation_id)
        with self._begin("reading dead letters") as connection:
            rows = connection.execute(query)
            return [DeadLetter(**_without_id(row)) for row in rows]


# ------------------------------------------------------------------------------ helpers



def _check_event_type(event_type: str) -> None:
    if not event_type or len(event_type) > EVENT_TYPE_CHARS:
        raise ValueError(
            f"event type {event_type[:80]!r} must have 1 to {EVENT_TYPE_CHARS} characters, "
            "e.g. 'conversation.escalated'"
        )


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")) or len(url) > URL_CHARS:
        raise ValueError(
            f"webhook URL {url[:80]!r} is invalid; it must start with http:// or https:// and "
            f"have at most {URL_CHARS} characters"
        )


def _sentiment_columns(sentiment: Mapping[str, float] | None) -> dict[str, float | None]:
    names = [label.value for label in Sentiment]
    if sentiment is None:
        return {f"sentiment_{name}": None for name in names}
    if set(sentiment) != set(names):
        raise ValueError(
            f"sentiment has the keys {sorted(sentiment)}; it must have exactly {names}"
        )
    return {f"sentiment_{name}": float(sentiment[name]) for name in names}


def _plain_json(name: str, value: Any) -> Any:
    """Return `value` as plain JSON types, so that every backend stores the same document."""
    try:
        text = json.dumps(value, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} cannot be stored as JSON: {error}") from None
    return json.loads(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def _insert_returning_id(connection: Connection, table: Table, values: dict[str, Any]) -> int:
    statement = table.insert().values(values).returning(table.c.id)
    return int(connection.execute(statement).scalar_one())


def _update_pending(connection: Connection, event_id: str, values: dict[str, Any]) -> bool:
    result = connection.execute(
        update(outbox)
        .where(outbox.c.event_id == event_id, outbox.c.status == "pending")
        .values(values)
    )
    return result.rowcount == 1


def _without_id(row: Row[Any]) -> dict[str, Any]:
    values = row._asdict()
    del values["id"]
    return values


def _outbox_event(row: Row[Any]) -> OutboxEvent:
    return OutboxEvent(**row._asdict())


def _stored_turn(row: Row[Any]) -> StoredTurn:
    values = row._asdict()
    names = [label.value for label in Sentiment]
    sentiment_values = {name: values.pop(f"sentiment_{name}") for name in names}
    has_sentiment = all(value is not None for value in sentiment_values.values())
    values["sentiment"] = sentiment_values if has_sentiment else None
    values["tier"] = Tier(values["tier"])
    return StoredTurn(**values)
