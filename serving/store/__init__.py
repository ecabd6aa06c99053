"""Prediction log store: scored turns, routing, handoffs, outcomes and the webhook outbox.

SQLite in `var/escalation.db` by default, PostgreSQL when `DATABASE_URL` is set. Call
`upgrade_database()` once at start-up, then open a `PredictionLog` on `create_store_engine()`.
"""

from __future__ import annotations

from serving.store.database import (
    DATABASE_URL_VARIABLE,
    DEFAULT_DATABASE_URL,
    alembic_config,
    create_store_engine,
    current_revision,
    database_url,
    head_revision,
    parse_database_url,
    upgrade_database,
)
from serving.store.log import PredictionLog
from serving.store.records import (
    DeadLetter,
    OutboxEvent,
    Outcome,
    StoredHandoff,
    StoredRouting,
    StoredTurn,
    utc_now,
)

__all__ = [
    "DATABASE_URL_VARIABLE",
    "DEFAULT_DATABASE_URL",
    "DeadLetter",
    "Outcome",
    "OutboxEvent",
    "PredictionLog",
    "StoredHandoff",
    "StoredRouting",
    "StoredTurn",
    "alembic_config",
    "create_store_engine",
    "current_revision",
    "database_url",
    "head_revision",
    "parse_database_url",
    "upgrade_database",
    "utc_now",
]
