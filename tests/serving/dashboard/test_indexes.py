"""Tests of migration 0003, which adds the dashboard's indexes, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from serving.store import alembic_config, create_store_engine, upgrade_database
from tests.serving.test_store import empty_database

DASHBOARD_INDEXES = {"ix_scored_turns_turn_index_created_at_conversation_id",
                     "ix_scored_turns_conversation_summary", "ix_scored_turns_bundle"}


def index_names(url: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        return {str(index["name"]) for index in inspect(engine).get_indexes("scored_turns")}
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_dashboard_indexes_up_and_down(backend: str, tmp_path: Path) -> None:
    with empty_database(backend, tmp_path) as url:
        assert upgrade_database(url) == "0003"
        at_head = index_names(url)

        command.downgrade(alembic_config(url), "0002")
        downgraded = index_names(url)

        assert upgrade_database(url) == "0003"
        assert DASHBOARD_INDEXES <= at_head
        assert DASHBOARD_INDEXES.isdisjoint(downgraded)
        assert "ix_scored_turns_created_at" in downgraded
        assert DASHBOARD_INDEXES <= index_names(url)
