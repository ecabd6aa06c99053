"""Add the indexes the analyst dashboard's queries need to stay fast at 100,000 logged turns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Finds the conversations that started in a time range from their turn 0 alone.
    op.create_index("ix_scored_turns_turn_index_created_at_conversation_id", "scored_turns",
                    ["turn_index", "created_at", "conversation_id"])
    # Covers the per-conversation aggregates, so SQLite reads the index and not the rows.
    op.create_index("ix_scored_turns_conversation_summary", "scored_turns",
                    ["conversation_id", "escalate", "role", "created_at",
                     "escalation_probability"])
    # Lists the logged bundle versions for the filter without scanning the table.
    op.create_index("ix_scored_turns_bundle", "scored_turns", ["bundle"])


def downgrade() -> None:
    op.drop_index("ix_scored_turns_bundle", table_name="scored_turns")
    op.drop_index("ix_scored_turns_conversation_summary", table_name="scored_turns")
    op.drop_index("ix_scored_turns_turn_index_created_at_conversation_id",
                  table_name="scored_turns")
