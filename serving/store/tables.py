"""Table definitions of the prediction log, the outcomes and the webhook outbox (SQLAlchemy Core).

Dashboards, backtests and the retraining loop read these tables directly, so column names are
part of the product's interface: rename one only with a migration and a note to their owners.
Every timestamp is timezone-aware UTC. The Alembic migrations under `migrations/versions` create
the same tables; a test compares the two so that they cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from serving.schema import MAX_ID_CHARS

# Named constraints let later migrations drop or alter them by name on every database.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OUTBOX_STATUSES: tuple[str, ...] = ("pending", "delivered", "dead")
URL_CHARS = 2_048
EVENT_TYPE_CHARS = 64
UUID_CHARS = 36

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back as a timezone-aware UTC datetime.

    SQLite has no time zone type, so the value is stored there as naive UTC text; PostgreSQL
    stores `timestamp with time zone`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} cannot be stored: pass a timezone-aware "
                "datetime, e.g. datetime.now(UTC)"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_document() -> TypeEngine[Any]:
    """Return the JSON column type: JSONB on PostgreSQL, so analysts can index and query it."""
    return JSON().with_variant(JSONB(), "postgresql")


def row_id() -> TypeEngine[int]:
    """Return the surrogate key type: BIGINT, but INTEGER on SQLite, where only INTEGER
    PRIMARY KEY auto-increments."""
    return BigInteger().with_variant(Integer(), "sqlite")


scored_turns = Table(
    "scored_turns",
    metadata,
    Column("id", row_id(), primary_key=True, autoincrement=True),
    Column("conversation_id", String(MAX_ID_CHARS), nullable=False),
    Column("turn_index", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("bundle", String(MAX_ID_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("escalation_probability", Float, nullable=False),
    # The sentiment and frustration heads score customer turns only; other roles store NULL.
    Column("sentiment_negative", Float, nullable=True),
    Column("sentiment_neutral", Float, nullable=True),
    Column("sentiment_positive", Float, nullable=True),
    Column("frustration", Float, nullable=True),
    Column("tier", String(16), nullable=False),
    Column("escalate", Boolean, nullable=False),
    Column("prepare_agent", Boolean, nullable=False),
    Column("reason_category", String(16), nullable=True),
    Column("reasons", json_document(), nullable=False),
    Column("rule_matches", json_document(), nullable=False),
    Column("escalation_threshold", Float, nullable=False),
    Column("prepare_threshold", Float, nullable=False),
    Column("latency_ms", Float, nullable=True),
    Column("text_sha256", String(64), nullable=False),
    Column("text_length", Integer, nullable=False),
    # Message text is personal data: it is NULL unless the log was opened with store_text=True.
    Column("text", Text, nullable=True),
    # The validated turn as JSON, with the conversation header on the first turn. It is NULL
    # unless text is stored, and a worker that lost its state re-scores the conversation from it.
    Column("turn", json_document(), nullable=True),
    Index(None, "conversation_id", "turn_index"),
    Index(None, "created_at"),
    # The dashboard's indexes (migration 0003): conversations by first turn, a covering index
    # of the per-conversation aggregates, and the bundle filter list.
    Index(None, "turn_index", "created_at", "conversation_id"),
    Index("ix_scored_turns_conversation_summary", "conversation_id", "escalate", "role",
          "created_at", "escalation_probability"),
    Index(None, "bundle"),
)

routing_results = Table(
    "routing_results",
    metadata,
    Column("id", row_id(), primary_key=True, autoincrement=True),
    Column("conversation_id", String(MAX_ID_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status", String(32), nullable=False),
    Column("rule", String(MAX_ID_CHARS), nullable=True),
    Column("team", String(MAX_ID_CHARS), nullable=True),
    Column("agent", String(MAX_ID_CHARS), nullable=True),
    Column("level", String(8), nullable=True),
    Column("queue_position", Integer, nullable=True),
    Column("estimated_wait_seconds", Float, nullable=True),
    Column("overflowed", Boolean, nullable=False),
    Column("overflow_from", String(MAX_ID_CHARS), nullable=True),
    Column("payload", json_document(), nullable=False),
    Index(None, "conversation_id"),
    Index(None, "created_at"),
)

handoff_packages = Table(
    "handoff_packages",
    metadata,
    Column("id", row_id(), primary_key=True, autoincrement=True),
    Column("conversation_id", String(MAX_ID_CHARS), nullable=False),
    Column("package_id", String(MAX_ID_CHARS), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("package", json_document(), nullable=False),
    UniqueConstraint("package_id"),
    Index(None, "conversation_id"),
    Index(None, "created_at"),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", row_id(), primary_key=True, autoincrement=True),
    Column("conversation_id", String(MAX_ID_CHARS), nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("resolved", Boolean, nullable=False),
    Column("csat", Integer, nullable=True),
    Column("agent_id", String(MAX_ID_CHARS), nullable=True),
    Column("handle_seconds", Float, nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("notes", Text, nullable=True),
    CheckConstraint("csat IS NULL OR (csat >= 1 AND csat <= 5)", name="csat_range"),
    Index(None, "conversation_id"),
    Index(None, "recorded_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("event_id", String(UUID_CHARS), primary_key=True),
    Column("idempotency_key", String(MAX_ID_CHARS), nullable=False),
    Column("event_type", String(EVENT_TYPE_CHARS), nullable=False),
    Column("conversation_id", String(MAX_ID_CHARS), nullable=False),
    Column("target_url", String(URL_CHARS), nullable=False),
    # The exact JSON text that is signed and sent, so every retry sends the same bytes.
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
    UniqueConstraint("idempotency_key", "target_url"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "conversation_id"),
    Index(None, "created_at"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", row_id(), primary_key=True, autoincrement=True),
    Column("event_id", String(UUID_CHARS), nullable=False),
    Column("idempotency_key", String(MAX_ID_CHARS), nullable=False),
    Column("event_type", String(EVENT_TYPE_CHARS), nullable=False),
    Column("conversation_id", String(MAX_ID_CHARS), nullable=False),
    Column("target_url", String(URL_CHARS), nullable=False),
    # A copy of the outbox body, so an operator can replay the event after fixing the receiver.
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("failed_at", UTCDateTime(), nullable=False),
    UniqueConstraint("event_id"),
    Index(None, "conversation_id"),
    Index(None, "failed_at"),
)
