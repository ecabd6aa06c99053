"""Read-only database engines for the dashboard, which must never hold the prediction log's write
lock."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from serving.store.database import SQLITE_BUSY_TIMEOUT_SECONDS, parse_database_url


def create_reader_engine(url: str | URL) -> Engine:
    """Create an engine that only reads the prediction log at `url`.

    The writer engine of `serving.store` starts every SQLite transaction with BEGIN IMMEDIATE,
    which takes the write lock, so a slow dashboard query on it would stall the recording of
    live turns. This engine leaves SQLite's reads outside any write lock (WAL lets them run
    beside a writer) and sets `query_only`, so a write through it fails. On PostgreSQL every
    transaction is opened READ ONLY.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed, hide_parameters=True,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _on_sqlite_reader_connect)
        return engine
    engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    return engine.execution_options(postgresql_readonly=True)


def _on_sqlite_reader_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()
