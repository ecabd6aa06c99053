"""Tests of the dashboard queries on SQLite and PostgreSQL against the hand-counted scenario."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from serving.store import analytics
from serving.store.analytics import AnalyticsFilters, ResultTable
from tests.serving.dashboard.conftest import DAY_RANGE, T0, Databases


def rows_by_key(table: ResultTable) -> dict[object, dict[str, object]]:
    return {record[table.columns[0]]: record for record in table.records()}


def board(scenario: Databases, **options: object) -> analytics.BoardPage:
    filters = options.pop("filters", DAY_RANGE)
    with scenario.reader.connect() as connection:
        return analytics.board_page(connection, filters, now=T0,  # type: ignore[arg-type]
                                    recommend_team=lambda reason: f"team-for-{reason}",
                                    **options)  # type: ignore[arg-type]


def table(scenario: Databases, query: Callable[[Connection, AnalyticsFilters], ResultTable],
          filters: AnalyticsFilters = DAY_RANGE) -> ResultTable:
    with scenario.reader.connect() as connection:
        return query(connection, filters)


# ------------------------------------------------------------------------------ board


def test_board_lists_only_open_conversations(scenario: Databases) -> None:
    page = board(scenario)

    assert page.total == 2
    assert [row["conversation_id"] for row in page.rows] == ["A", "B"]


def test_board_waiting_row_has_overdue_sla(scenario: Databases) -> None:
    row = board(scenario).rows[0]

    assert row["status"] == "waiting for agent"
    assert row["tier"] == "immediate"
    assert row["reason"] == "billing"
    assert row["sla_deadline"] == (T0 - timedelta(minutes=6)).isoformat()
    assert row["sla_seconds_left"] == pytest.approx(-360.0)
    assert row["team"] == "billing"
    assert row["routing_status"] == "queued"
    assert row["recommended_team"] is None
    assert [signal["code"] for signal in row["signals"]] == ["billing_dispute",
                                                             "escalation_probability"]


def test_board_trend_follows_customer_turns(scenario: Databases) -> None:
    first, second = board(scenario).rows

    assert first["probability_history"] == pytest.approx([0.3, 0.7])
    assert first["trend"] == pytest.approx(0.4)
    assert second["probability_history"] == pytest.approx([0.45])
    assert second["trend"] is None


def test_board_recommends_team_before_routing(scenario: Databases) -> None:
    row = board(scenario).rows[1]

    assert row["status"] == "prepare agent"
    assert row["team"] is None
    assert row["recommended_team"] == "team-for-None"
    assert row["sla_deadline"] is None


@pytest.mark.parametrize(("facet", "value", "expected"), [
    ("team", "billing", ["A"]),
    ("reason", "billing", ["A"]),
    ("bundle", "b1", ["B"]),
    ("team", "sales", []),
])
def test_board_facet_filters(scenario: Databases, facet: str, value: str,
                             expected: list[str]) -> None:
    facets: dict[str, Any] = {facet: value}
    page = board(scenario, filters=replace(DAY_RANGE, **facets))

    assert [row["conversation_id"] for row in page.rows] == expected
    assert page.total == len(expected)


@pytest.mark.parametrize(("sort", "expected"), [
    ("probability", ["A", "B"]), ("waiting", ["A", "B"]), ("recent", ["B", "A"]),
])
def test_board_sort_orders(scenario: Databases, sort: str, expected: list[str]) -> None:
    assert [row["conversation_id"] for row in board(scenario, sort=sort).rows] == expected


def test_board_pages_keep_total(scenario: Databases) -> None:
    page = board(scenario, page=2, page_size=1)

    assert [row["conversation_id"] for row in page.rows] == ["B"]
    assert page.total == 2


def test_board_time_range_excludes_idle(scenario: Databases) -> None:
    recent = AnalyticsFilters(start=T0 - timedelta(minutes=5), end=T0 + timedelta(minutes=1))

    assert [row["conversation_id"] for row in board(scenario, filters=recent).rows] == ["B"]


@pytest.mark.parametrize(("options", "message"), [
    ({"page": 0}, "page is 0"), ({"page_size": 500}, "page_size is 500"),
    ({"sort": "name"}, "sort 'name' is invalid"),
])
def test_board_rejects_bad_paging(scenario: Databases, options: dict[str, object],
                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        board(scenario, **options)


# ------------------------------------------------------------------------------ history


def test_volume_per_start_hour(scenario: Databases) -> None:
    result = table(scenario, analytics.volume_table)
    rows = rows_by_key(result)

    assert list(rows) == [f"2026-12-01 {hour:02d}:00:00" for hour in range(5, 12)]
    assert rows["2026-12-01 11:00:00"]["conversations"] == 3
    assert rows["2026-12-01 11:00:00"]["escalations"] == 1
    assert rows["2026-12-01 11:00:00"]["escalation_rate"] == pytest.approx(1 / 3)
    assert rows["2026-12-01 09:00:00"]["escalations"] == 0
    assert rows["2026-12-01 10:00:00"]["average_wait_seconds"] == pytest.approx(90.0, abs=0.01)
    assert rows["2026-12-01 08:00:00"]["max_wait_seconds"] == pytest.approx(200.0, abs=0.01)


def test_volume_daily_over_long_range(scenario: Databases) -> None:
    month = AnalyticsFilters(start=T0 - timedelta(days=60), end=T0 + timedelta(minutes=1))
    rows = rows_by_key(table(scenario, analytics.volume_table, month))

    assert len(rows) == 41
    assert rows["2026-10-22 00:00:00"]["conversations"] == 1
    assert rows["2026-11-15 00:00:00"]["conversations"] == 0
    assert rows["2026-12-01 00:00:00"]["conversations"] == 9
    assert rows["2026-12-01 00:00:00"]["escalations"] == 5


def test_reasons_count_first_escalation(scenario: Databases) -> None:
    rows = rows_by_key(table(scenario, analytics.reason_table))

    assert {reason: row["escalations"] for reason, row in rows.items()} == {
        "general": 3, "billing": 1, "technical": 1}
    assert rows["general"]["share"] == pytest.approx(0.6)
    assert rows["general"]["average_wait_seconds"] == pytest.approx(290 / 3, abs=0.01)


def test_waits_per_tier_against_sla(scenario: Databases) -> None:
    rows = rows_by_key(table(scenario, analytics.wait_table))

    assert rows["immediate"]["escalations"] == 2
    assert rows["immediate"]["agent_joined"] == 1
    assert rows["immediate"]["within_sla"] == 0
    assert rows["rapid"]["escalations"] == 3
    assert rows["rapid"]["within_sla"] == 2
    assert rows["rapid"]["average_wait_seconds"] == pytest.approx(350 / 3, abs=0.01)
    assert rows["scheduled"]["escalations"] == 0


def test_agents_resolution_csat_handle_time(scenario: Databases) -> None:
    rows = rows_by_key(table(scenario, analytics.agent_table))

    assert list(rows) == ["ana.silva", "ben.okafor", "dev.rao"]
    ana = rows["ana.silva"]
    assert (ana["team"], ana["handoffs"], ana["outcomes"], ana["resolved"]) == (
        "general", 2, 2, 2)
    assert ana["average_csat"] == pytest.approx(3.5)
    assert ana["average_handle_seconds"] == pytest.approx(600.0)
    assert rows["ben.okafor"]["average_csat"] is None
    assert rows["ben.okafor"]["csat_responses"] == 0
    assert rows["dev.rao"]["resolution_rate"] == pytest.approx(1.0)


def test_handbacks_count_held_back_turns(scenario: Databases) -> None:
    rows = rows_by_key(table(scenario, analytics.handback_table))

    assert rows["model probability"]["turns"] == 2
    assert rows["model probability"]["conversations"] == 1
    assert rows["rule signal"]["turns"] == 1
    assert rows["rule signal"]["conversations"] == 1


def test_latency_per_hour_with_bundle_filter(scenario: Databases) -> None:
    rows = rows_by_key(table(scenario, analytics.latency_table, replace(DAY_RANGE, bundle="b1")))

    assert sum(int(row["turns"]) for row in rows.values()) == 7  # type: ignore[call-overload]
    assert rows["2026-12-01 10:00:00"]["average_latency_ms"] == pytest.approx(10.5)


# ------------------------------------------------------------------------------ quality


def test_quality_confusion_and_timing(scenario: Databases) -> None:
    metrics = dict(table(scenario, analytics.quality_table).rows)

    assert metrics["conversations"] == 9
    assert metrics["with_outcome"] == 6
    assert (metrics["true_positives"], metrics["false_positives"],
            metrics["false_negatives"], metrics["true_negatives"]) == (3, 1, 1, 1)
    assert metrics["precision"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(0.75)
    assert metrics["f1"] == pytest.approx(0.75)
    assert metrics["late_handoffs"] == 1
    assert metrics["timely_handoffs"] == 2
    assert metrics["premature_handoffs"] == 1
    assert metrics["missed_escalations"] == 1


def test_quality_team_filter(scenario: Databases) -> None:
    metrics = dict(table(scenario, analytics.quality_table, replace(DAY_RANGE, team="general"))
                   .rows)

    assert metrics["with_outcome"] == 3
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(1.0)


def test_quality_empty_range_has_no_ratios(scenario: Databases) -> None:
    empty = AnalyticsFilters(start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    metrics = dict(table(scenario, analytics.quality_table, empty).rows)

    assert metrics["conversations"] == 0
    assert metrics["precision"] is None
    assert metrics["f1"] is None


def test_calibration_bins_highest_probability(scenario: Databases) -> None:
    rows = rows_by_key(table(scenario, analytics.calibration_table))

    counts = {index: row["conversations"] for index, row in rows.items()}
    assert counts == {0: 0, 1: 1, 2: 1, 3: 0, 4: 0, 5: 1, 6: 1, 7: 1, 8: 1, 9: 0}
    assert rows[7]["mean_probability"] == pytest.approx(0.72)
    assert rows[6]["observed_rate"] == pytest.approx(0.0)
    assert rows[8]["observed_rate"] == pytest.approx(1.0)
    assert rows[0]["observed_rate"] is None


def test_bundles_attribute_deciding_prediction(scenario: Databases) -> None:
    rows = rows_by_key(table(scenario, analytics.bundle_table))

    first, second = rows["b1"], rows["b2"]
    assert (first["conversations"], first["turns"], first["with_outcome"]) == (5, 7, 3)
    assert (first["true_positives"], first["false_negatives"]) == (1, 1)
    assert first["recall"] == pytest.approx(0.5)
    assert (second["conversations"], second["turns"], second["predicted"]) == (4, 14, 4)
    assert second["precision"] == pytest.approx(2 / 3)


def test_missed_lists_false_negatives(scenario: Databases) -> None:
    result = table(scenario, analytics.missed_table)

    assert result.total == 1
    assert [record["conversation_id"] for record in result.records()] == ["D"]
    assert result.records()[0]["bundle"] == "b1"


def test_old_conversation_outside_range(scenario: Databases) -> None:
    year = AnalyticsFilters(start=T0 - timedelta(days=365), end=T0 + timedelta(minutes=1))
    metrics = dict(table(scenario, analytics.quality_table, year).rows)

    assert metrics["conversations"] == 10
    assert metrics["true_positives"] == 4


def test_filter_options_lists_logged_values(scenario: Databases) -> None:
    with scenario.reader.connect() as connection:
        options = analytics.filter_options(connection, ["general", "billing"])

    assert options["bundles"] == ["b1", "b2"]
    assert options["teams"] == ["general", "billing", "technical"]
    assert "urgent" in options["reasons"]


def test_filters_reject_reversed_range() -> None:
    with pytest.raises(ValueError, match="at or before it starts"):
        AnalyticsFilters(start=T0, end=T0 - timedelta(hours=1))


# ------------------------------------------------------------------------------ reader


def test_reader_engine_cannot_write(scenario: Databases) -> None:
    with scenario.reader.connect() as connection, pytest.raises(DBAPIError):
        connection.execute(text("DELETE FROM scored_turns"))

    with scenario.writer.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM scored_turns")).scalar_one() == 22


def test_board_page_past_end_keeps_total(scenario: Databases) -> None:
    page = board(scenario, page=3, page_size=1)

    assert page.rows == []
    assert page.total == 2
