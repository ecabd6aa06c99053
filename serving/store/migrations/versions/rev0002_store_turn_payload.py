"""Keep the validated turn beside its score, so a worker that lost its state can re-score.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Like `text`, the payload holds the message and is NULL unless the log stores text.
    with op.batch_alter_table("scored_turns") as batch:
        batch.add_column(sa.Column("turn", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scored_turns") as batch:
        batch.drop_column("turn")
