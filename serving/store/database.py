"""Database engines and schema migrations of the prediction log, on SQLite or PostgreSQL.

The database is SQLite in `var/escalation.db` of the project unless `DATABASE_URL` names
another one. PostgreSQL URLs use the psycopg 3 driver; a plain `postgresql://` or `postgres://`
URL is rewritten to `postgresql+psycopg://`. To keep the tables in a schema other than
`public`, add `?options=-csearch_path%3D<schema>` to the URL (the schema must exist).

`upgrade_database` applies the Alembic migrations shipped in `migrations/` without any
alembic.ini. Several workers may call it at the same moment. On PostgreSQL the migration runs
in one transaction that first takes a transaction-level advisory lock, and on SQLite in one
`BEGIN IMMEDIATE` transaction. A late worker therefore waits, then finds the schema at head
and does nothing. To write a new migration, call
`alembic.command.revision(alembic_config(url), message=..., autogenerate=True)`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from serving.errors import StoreError

logger = logging.getLogger(__name__)

DATABASE_URL_VARIABLE = "DATABASE_URL"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# NOTE: in a non-editable install PROJECT_ROOT is the site-packages folder, so a deployed
# service should set DATABASE_URL instead of relying on this default.
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'escalation.db'}"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")

# How long a SQLite writer waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

# Key of the PostgreSQL advisory lock that serialises migrations. Every process derives the same
# 64-bit value from this fixed name, so no other part of the product may use the same key.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"escalation-scoring/alembic-upgrade").digest()[:8], "big", signed=True
)


def database_url(environment: Mapping[str, str] | None = None) -> str:
    """Return `DATABASE_URL` from `environment` (default: os.environ), or the SQLite default."""
    environment = os.environ if environment is None else environment
    value = environment.get(DATABASE_URL_VARIABLE, "").strip()
    return value or DEFAULT_DATABASE_URL


def parse_database_url(url: str | URL) -> URL:
    """Parse a SQLAlchemy URL, pick the psycopg 3 driver for PostgreSQL and reject other backends.

    Raises StoreError when the URL is malformed, names another backend, or is an in-memory
    SQLite database (each pooled connection would see its own empty database, so the outbox
    worker thread could never see the rows the request threads wrote).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise StoreError(
            f"invalid database URL {_shown(url)!r}: {error}; expected e.g. "
            "sqlite:///var/escalation.db or postgresql+psycopg://user@host:5432/dbname"
        ) from None

    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")

    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(
            f"database URL {_shown(parsed)!r} uses backend {backend!r}; the prediction log "
            f"supports {', '.join(SUPPORTED_BACKENDS)}"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StoreError(
            f"database URL {_shown(parsed)!r} is an in-memory SQLite database, which the "
            "outbox worker thread cannot share; use a file, e.g. sqlite:///var/escalation.db"
        )
    return parsed


def create_store_engine(url: str | URL | None = None) -> Engine:
    """Create an engine for the prediction log; `url` defaults to `database_url()`.

    A SQLite file's folder is created when missing. Statement parameters are hidden from
    errors and logs because they can carry message text and webhook bodies.
    """
    parsed = parse_database_url(url if url is not None else database_url())

    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)


WAL_SWITCH_ATTEMPTS = 50
WAL_SWITCH_PAUSE_SECONDS = 0.05


def _create_sqlite_engine(url: URL) -> Engine:
    path = Path(str(url.database))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create the folder {path.parent} of the SQLite database: {error}; create "
            f"it or set {DATABASE_URL_VARIABLE} to a writable location"
        ) from None

    engine = create_engine(
        url,
        hide_parameters=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # The sqlite3 module opens transactions late and commits before DDL on its own; switching
    # that off lets _on_sqlite_begin start every transaction itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers go on while a writer holds the lock. The mode is stored in the file,
        # so only the first connections to a new database switch it.
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            _switch_to_wal(cursor)
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    # Switching needs an exclusive lock, and SQLite may return "database is locked" at once
    # instead of waiting when several connections open a new file together, so retry briefly.
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(WAL_SWITCH_PAUSE_SECONDS)


def _on_sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN. With a deferred BEGIN, two transactions that
    # both read and then write (claiming outbox events, migrating) fail with "database is
    # locked" instead of waiting for each other.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str | URL | None = None) -> Config:
    """Return an Alembic configuration for the shipped migrations, with no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # A file name must be a valid module name for mypy, so it cannot start with a digit.
    config.set_main_option("file_template", "rev%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = parse_database_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest migration revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migration found under {MIGRATIONS_DIR}; the package is incomplete")
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the migration revision the database is at, or None before the first migration."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as error:
        raise StoreError(
            f"reading the migration revision of {_shown(engine.url)} failed: {error}"
        ) from error


def upgrade_database(
    target: str | URL | Engine | None = None, revision: str = "head"
) -> str | None:
    """Apply the migrations up to `revision` (default: the newest) and return the revision
    the database is at afterwards.

    `target` is an engine or a URL (default: `database_url()`). Running it again, or from
    several processes at once, is safe: see the module docstring.
    """
    engine = target if isinstance(target, Engine) else create_store_engine(target)
    try:
        _upgrade(engine, revision)
        reached = current_revision(engine)
    finally:
        if engine is not target:
            engine.dispose()

    logger.info("prediction log database %s is at migration revision %s",
                _shown(engine.url), reached)
    return reached


def _upgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Released at commit or rollback, so a crashed worker cannot hold it forever.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as error:
        raise StoreError(
            f"migrating the prediction log database {_shown(engine.url)} to {revision} "
            f"failed: {error}; check that the database is reachable and the user may create "
            "tables"
        ) from error


def _shown(url: str | URL) -> str:
    """Return the URL with its password masked, for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"
