"""Alembic environment of the prediction log: runs migrations on the connection it is given.

`serving.store.database.upgrade_database` passes an open connection (holding the migration lock)
in `config.attributes["connection"]`; without one, this falls back to `sqlalchemy.url` from the
Alembic config so that the `alembic` command line works as well.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from serving.store.tables import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_on_connection(connection: Connection) -> None:
    # Batch mode lets later migrations alter columns on SQLite, which has almost no ALTER TABLE.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on_connection(connection)
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database to migrate: pass a connection in config.attributes['connection'] or "
            "set sqlalchemy.url, or call serving.store.upgrade_database(url)"
        )
    engine = create_engine(url)
    try:
        with engine.begin() as own_connection:
            run_on_connection(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
