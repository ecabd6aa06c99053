"""Read-only analytics over the prediction log for the dashboard: board, history and quality.

Every function takes an open connection and `AnalyticsFilters` and aggregates in SQL, so the
work done in Python grows with the rows returned, not with the turns logged. The same queries
run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from serving.store.analytics.board import BoardPage, board_page, board_trends
from serving.store.analytics.common import (
    AnalyticsFilters,
    ResultTable,
    filter_options,
    unknown_facet_warnings,
)
from serving.store.analytics.history import (
    agent_table,
    handback_table,
    latency_table,
    reason_table,
    volume_table,
    wait_table,
)
from serving.store.analytics.quality import (
    bundle_table,
    calibration_table,
    missed_table,
    quality_table,
)

__all__ = [
    "AnalyticsFilters",
    "BoardPage",
    "ResultTable",
    "agent_table",
    "board_page",
    "board_trends",
    "bundle_table",
    "calibration_table",
    "filter_options",
    "handback_table",
    "latency_table",
    "missed_table",
    "quality_table",
    "reason_table",
    "unknown_facet_warnings",
    "volume_table",
    "wait_table",
]
