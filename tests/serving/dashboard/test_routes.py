"""Tests of the dashboard's data routes: JSON shapes, CSV export, errors and static files."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.dashboard.export import csv_cell, to_csv
from serving.store import PredictionLog, create_store_engine, upgrade_database
from tests.serving.dashboard.conftest import (
    DAY_QUERY,
    KEY,
    T0,
    dashboard_app,
    record_scenario,
    turn,
)

HEADERS = {"X-API-Key": KEY}


@pytest.fixture
def client(scenario_url: str) -> TestClient:
    return TestClient(dashboard_app(scenario_url), headers=HEADERS)


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# ------------------------------------------------------------------------------ JSON


def test_table_json_shape(client: TestClient) -> None:
    body = client.get("/dashboard/api/reasons", params=DAY_QUERY).json()

    assert body["name"] == "reasons"
    assert body["columns"] == ["reason", "escalations", "share", "average_wait_seconds"]
    assert body["rows"][0][:2] == ["general", 3]
    assert body["filters"]["from"] == DAY_QUERY["from"]
    assert body["filters"]["bucket"] == "hour"


def test_board_json_pages(client: TestClient) -> None:
    body = client.get("/dashboard/api/board",
                      params={**DAY_QUERY, "page_size": "1", "page": "2"}).json()

    assert body["total"] == 2
    assert [row["conversation_id"] for row in body["rows"]] == ["B"]
    assert body["rows"][0]["recommended_team"] == "general"


def test_filters_change_the_data(client: TestClient) -> None:
    everyone = client.get("/dashboard/api/quality", params=DAY_QUERY).json()
    general = client.get("/dashboard/api/quality", params={**DAY_QUERY, "team": "general"}).json()

    assert dict(everyone["rows"])["with_outcome"] == 6
    assert dict(general["rows"])["with_outcome"] == 3


def test_default_board_window_is_state_ttl(scenario_url: str) -> None:
    client = TestClient(dashboard_app(scenario_url, ESCALATION_STATE_TTL_SECONDS="3600"),
                        headers=HEADERS)
    body = client.get("/dashboard/api/board", params={"to": DAY_QUERY["to"]}).json()

    assert body["filters"]["from"] == (T0 + timedelta(minutes=1) - timedelta(hours=1)).isoformat()
    assert body["total"] == 2


def test_date_without_time_reads_as_utc_midnight(client: TestClient) -> None:
    body = client.get("/dashboard/api/volume", params={"from": "2026-12-01",
                                                      "to": "2026-12-02"}).json()

    assert body["filters"]["from"] == "2026-12-01T00:00:00+00:00"
    assert sum(row[1] for row in body["rows"]) == 9


@pytest.mark.parametrize(("params", "fragments"), [
    ({"from": "yesterday"}, ["'from'", "'yesterday'", "ISO 8601"]),
    ({"from": "2026-12-02", "to": "2026-12-01"}, ["'to'", "after 'from'"]),
    ({"reason": "angry"}, ["'reason'", "'angry'", "billing"]),
    ({"team": "x" * 300}, ["'team'", "at most 200"]),
    ({"to": "0001-01-01"}, ["'to'", "'0001-01-01'", "'from'"]),
    ({"from": "0001-01-01T00:00:00+01:00"}, ["'from'", "+01:00", "converted to UTC"]),
    ({"to": "9999-12-31T23:59:59-01:00"}, ["'to'", "-01:00", "converted to UTC"]),
])
def test_bad_filter_names_parameter(client: TestClient, params: dict[str, str],
                                    fragments: list[str]) -> None:
    response = client.get("/dashboard/api/quality", params=params)

    assert response.status_code == 422
    for fragment in fragments:
        assert fragment in response.json()["detail"]


@pytest.mark.parametrize(("params", "fragment"), [
    ({"page_size": "0"}, "'page_size'"), ({"page": "x"}, "'page'"),
    ({"sort": "alphabetical"}, "'sort'"), ({"page": "\u00b2"}, "'page'"),
    ({"page": "\uff11"}, "'page'"), ({"page_size": "\u0661\u0660"}, "'page_size'"),
])
def test_bad_board_paging_names_parameter(client: TestClient, params: dict[str, str],
                                          fragment: str) -> None:
    response = client.get("/dashboard/api/board", params=params)

    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_board_json_matches_board(client: TestClient) -> None:
    plain = client.get("/dashboard/api/board", params=DAY_QUERY)
    suffixed = client.get("/dashboard/api/board.json", params=DAY_QUERY)

    assert suffixed.status_code == 200
    assert suffixed.json()["total"] == plain.json()["total"]
    assert ([row["conversation_id"] for row in suffixed.json()["rows"]]
            == [row["conversation_id"] for row in plain.json()["rows"]])


@pytest.mark.parametrize("dataset", ["board", "quality", "volume"])
def test_unknown_facets_warned(client: TestClient, dataset: str) -> None:
    params = {**DAY_QUERY, "team": "nosuchteam", "bundle": "nosuchbundle"}
    body = client.get(f"/dashboard/api/{dataset}", params=params).json()

    assert len(body["warnings"]) == 2
    assert "'nosuchteam'" in body["warnings"][0]
    assert "'nosuchbundle'" in body["warnings"][1]


def test_known_facets_not_warned(client: TestClient) -> None:
    bundle = client.get("/dashboard/api/options").json()["bundles"][0]
    params = {**DAY_QUERY, "team": "general", "bundle": bundle}

    assert client.get("/dashboard/api/board", params=params).json()["warnings"] == []
    assert client.get("/dashboard/api/quality", params=params).json()["warnings"] == []


def test_unknown_dataset_lists_available(client: TestClient) -> None:
    response = client.get("/dashboard/api/revenue")

    assert response.status_code == 404
    assert "calibration" in response.json()["detail"]


def test_broken_database_gives_503(tmp_path: Path) -> None:
    client = TestClient(dashboard_app(f"sqlite:///{tmp_path / 'never-migrated.db'}"),
                        headers=HEADERS)
    response = client.get("/dashboard/api/quality")

    assert response.status_code == 503
    assert "DATABASE_URL" in response.json()["detail"]


# ------------------------------------------------------------------------------ CSV


def test_table_csv_export(client: TestClient) -> None:
    response = client.get("/dashboard/api/calibration.csv", params=DAY_QUERY)
    rows = read_csv(response.text)

    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="escalation-calibration-' in response.headers["content-disposition"]
    assert rows[0] == ["bin", "lower", "upper", "conversations", "mean_probability",
                       "escalated", "observed_rate"]
    assert len(rows) == 11
    assert rows[1][4] == ""


def test_board_csv_export(client: TestClient) -> None:
    rows = read_csv(client.get("/dashboard/api/board.csv", params=DAY_QUERY).text)

    assert rows[0][:3] == ["conversation_id", "status", "escalation_probability"]
    assert [row[0] for row in rows[1:]] == ["A", "B"]
    assert rows[1][6] == "billing_dispute escalation_probability"


def test_csv_quotes_formula_like_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    upgrade_database(url)
    writer = create_store_engine(url)
    log = PredictionLog(writer)
    record_scenario(log)
    turn(log, "=HYPERLINK(\"http://attacker.example\")", 0, "customer", 0.9, T0, "b1")
    writer.dispose()
    client = TestClient(dashboard_app(url), headers=HEADERS)

    rows = read_csv(client.get("/dashboard/api/board.csv", params=DAY_QUERY).text)

    assert rows[1][0] == "'=HYPERLINK(\"http://attacker.example\")"


def test_csv_cell_rules() -> None:
    assert csv_cell(None) == ""
    assert csv_cell(-0.5) == -0.5
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell(["a", 1]) == '["a",1]'
    assert to_csv(("a", "b"), [(1, None)]) == "a,b\r\n1,\r\n"


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb", 'a"b', "a,b"])
def test_csv_quotes_line_breaks(text: str) -> None:
    written = to_csv(("id", "n"), [(text, 1)])

    assert read_csv(written) == [["id", "n"], [text, "1"]]
    assert written.count("\r\n") == 2 + text.count("\r\n")


def test_board_csv_keeps_multiline_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    upgrade_database(url)
    writer = create_store_engine(url)
    log = PredictionLog(writer)
    record_scenario(log)
    turn(log, "line\nbreak", 0, "customer", 0.9, T0, "b1")
    writer.dispose()
    client = TestClient(dashboard_app(url), headers=HEADERS)

    rows = read_csv(client.get("/dashboard/api/board.csv", params=DAY_QUERY).text)

    assert "line\nbreak" in [row[0] for row in rows[1:]]
    assert all(len(row) == len(rows[0]) for row in rows)


# ------------------------------------------------------------------------------ pages


def test_plotly_served_from_package(client: TestClient) -> None:
    response = client.get("/dashboard/static/plotly.min.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert len(response.content) > 1_000_000
    assert b"plotly" in response.content[:2_000].lower()


@pytest.mark.parametrize("name", ["dashboard.js", "dashboard.css"])
def test_own_static_files_served(client: TestClient, name: str) -> None:
    assert client.get(f"/dashboard/static/{name}").status_code == 200


@pytest.mark.parametrize("name", ["index.html", "access.py", "..%2Faccess.py", "login.html"])
def test_other_files_not_served(client: TestClient, name: str) -> None:
    assert client.get(f"/dashboard/static/{name}").status_code == 404


def test_page_has_offline_content_policy(client: TestClient) -> None:
    response = client.get("/dashboard")
    policy = response.headers["content-security-policy"]

    assert response.status_code == 200
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "cdn" not in response.text.lower()
    assert 'src="/dashboard/static/plotly.min.js"' in response.text
