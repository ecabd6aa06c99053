"""Create the prediction log, outcome, outbox and dead-letter tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration is a frozen snapshot: it spells out its types instead of importing them from
# serving.store.tables, whose definitions move on with later revisions.
MAX_ID_CHARS = 200
URL_CHARS = 2_048


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _row_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _id_column() -> sa.Column[Any]:
    return sa.Column("id", _row_id(), primary_key=True, autoincrement=True)


def _conversation_id() -> sa.Column[Any]:
    return sa.Column("conversation_id", sa.String(MAX_ID_CHARS), nullable=False)


def upgrade() -> None:
    op.create_table(
        "scored_turns",
        _id_column(),
        _conversation_id(),
        sa.Column("turn_index", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("bundle", sa.String(MAX_ID_CHARS), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("escalation_probability", sa.Float(), nullable=False),
        sa.Column("sentiment_negative", sa.Float(), nullable=True),
        sa.Column("sentiment_neutral", sa.Float(), nullable=True),
        sa.Column("sentiment_positive", sa.Float(), nullable=True),
        sa.Column("frustration", sa.Float(), nullable=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("escalate", sa.Boolean(), nullable=False),
        sa.Column("prepare_agent", sa.Boolean(), nullable=False),
        sa.Column("reason_category", sa.String(16), nullable=True),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("rule_matches", _json(), nullable=False),
        sa.Column("escalation_threshold", sa.Float(), nullable=False),
        sa.Column("prepare_threshold", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("text_length", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scored_turns"),
    )
    op.create_index("ix_scored_turns_conversation_id_turn_index", "scored_turns",
                    ["conversation_id", "turn_index"])
    op.create_index("ix_scored_turns_created_at", "scored_turns", ["created_at"])

    op.create_table(
        "routing_results",
        _id_column(),
        _conversation_id(),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(MAX_ID_CHARS), nullable=True),
        sa.Column("team", sa.String(MAX_ID_CHARS), nullable=True),
        sa.Column("agent", sa.String(MAX_ID_CHARS), nullable=True),
        sa.Column("level", sa.String(8), nullable=True),
        sa.Column("queue_position", sa.Integer(), nullable=True),
        sa.Column("estimated_wait_seconds", sa.Float(), nullable=True),
        sa.Column("overflowed", sa.Boolean(), nullable=False),
        sa.Column("overflow_from", sa.String(MAX_ID_CHARS), nullable=True),
        sa.Column("payload", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routing_results"),
    )
    op.create_index("ix_routing_results_conversation_id", "routing_results", ["conversation_id"])
    op.create_index("ix_routing_results_created_at", "routing_results", ["created_at"])

    op.create_table(
        "handoff_packages",
        _id_column(),
        _conversation_id(),
        sa.Column("package_id", sa.String(MAX_ID_CHARS), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("package", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_packages"),
        sa.UniqueConstraint("package_id", name="uq_handoff_packages_package_id"),
    )
    op.create_index("ix_handoff_packages_conversation_id", "handoff_packages",
                    ["conversation_id"])
    op.create_index("ix_handoff_packages_created_at", "handoff_packages", ["created_at"])

    op.create_table(
        "outcomes",
        _id_column(),
        _conversation_id(),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(MAX_ID_CHARS), nullable=True),
        sa.Column("handle_seconds", sa.Float(), nullable=True),
        sa.Column("recorded_at", _timestamp(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outcomes"),
        sa.CheckConstraint("csat IS NULL OR (csat >= 1 AND csat <= 5)",
                           name="ck_outcomes_csat_range"),
    )
    op.create_index("ix_outcomes_conversation_id", "outcomes", ["conversation_id"])
    op.create_index("ix_outcomes_recorded_at", "outcomes", ["recorded_at"])

    op.create_table(
        "outbox",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("idempotency_key", sa.String(MAX_ID_CHARS), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        _conversation_id(),
        sa.Column("target_url", sa.String(URL_CHARS), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _timestamp(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("delivered_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_outbox"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="ck_outbox_status"),
        sa.UniqueConstraint("idempotency_key", "target_url",
                            name="uq_outbox_idempotency_key_target_url"),
    )
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_conversation_id", "outbox", ["conversation_id"])
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])

    op.create_table(
        "dead_letters",
        _id_column(),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("idempotency_key", sa.String(MAX_ID_CHARS), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        _conversation_id(),
        sa.Column("target_url", sa.String(URL_CHARS), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("failed_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("event_id", name="uq_dead_letters_event_id"),
    )
    op.create_index("ix_dead_letters_conversation_id", "dead_letters", ["conversation_id"])
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"])


def downgrade() -> None:
    for table in ("dead_letters", "outbox", "outcomes", "handoff_packages", "routing_results",
                  "scored_turns"):
        op.drop_table(table)
