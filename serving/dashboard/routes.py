"""Routes of the analyst dashboard: the pages, their static files and the JSON and CSV data."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from serving.dashboard.access import (
    DASHBOARD_PATH,
    LOGIN_PATH,
    STATIC_DIR,
    DashboardAccess,
    add_login_routes,
    page_headers,
)
from serving.dashboard.export import to_csv
from serving.dashboard.params import parse_choice, parse_filters, parse_int
from serving.roster import Roster
from serving.settings import Settings
from serving.store import analytics
from serving.store.analytics import AnalyticsFilters, ResultTable
from serving.store.analytics.board import BOARD_SORTS, MAX_PAGE_SIZE
from serving.tiers import Reason

logger = logging.getLogger(__name__)

HISTORY_WINDOW = timedelta(days=30)
OWN_STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
PLOTLY_FILE = "plotly.min.js"

TableQuery = Callable[[Connection, AnalyticsFilters], ResultTable]
TABLES: dict[str, TableQuery] = {
    "volume": analytics.volume_table,
    "reasons": analytics.reason_table,
    "waits": analytics.wait_table,
    "latency": analytics.latency_table,
    "agents": analytics.agent_table,
    "handbacks": analytics.handback_table,
    "quality": analytics.quality_table,
    "calibration": analytics.calibration_table,
    "bundles": analytics.bundle_table,
    "missed": analytics.missed_table,
}
BOARD_CSV_COLUMNS = ("conversation_id", "status", "escalation_probability", "trend", "tier",
                     "reason", "signals", "sla_deadline", "sla_seconds_left", "team", "agent",
                     "recommended_team", "bundle", "turns", "last_activity")


def create_dashboard_router(engine: Engine, settings: Settings,
                            roster: Callable[[], Roster]) -> APIRouter:
    """Build the router of /dashboard over a read-only `engine` of the prediction log.

    `roster` returns the roster in use now, which names the teams and recommends one for
    conversations not yet routed. The board's default range is the conversation state TTL,
    because older idle conversations have left the live state. Other views default to 30 days.
    """
    access = DashboardAccess(settings)
    router = APIRouter(prefix=DASHBOARD_PATH)
    add_login_routes(router, access)
    board_window = timedelta(seconds=settings.state_ttl_seconds)
    secured = [Depends(access.require)]

    @router.get("", include_in_schema=False)
    def index(request: Request) -> Response:
        if not access.allows(request):
            return RedirectResponse(f"{LOGIN_PATH}?next={DASHBOARD_PATH}", status_code=303)
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers=page_headers())

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name == PLOTLY_FILE:
            return FileResponse(plotly_bundle_path(), media_type="text/javascript",
                                headers={"Cache-Control": "public, max-age=86400"})
        if name not in OWN_STATIC_FILES:
            raise HTTPException(status_code=404, detail=f"no dashboard file {name[:60]!r}")
        return FileResponse(STATIC_DIR / name, media_type=OWN_STATIC_FILES[name],
                            headers={"Cache-Control": "no-cache"})

    @router.get("/api/options", dependencies=secured)
    def options() -> dict[str, Any]:
        teams = [team.id for team in roster().teams]
        with _reading(engine) as connection:
            return analytics.filter_options(connection, teams)

    @router.get("/api/board", dependencies=secured)
    def board(request: Request) -> Response:
        return board_response(dict(request.query_params))

    def board_response(params: dict[str, str]) -> Response:
        now = datetime.now(UTC)
        filters = parse_filters(params, now=now, default_window=board_window)
        page = parse_int(params, "page", 1, 1, 1_000_000)
        page_size = parse_int(params, "page_size", 50, 1, MAX_PAGE_SIZE)
        sort = parse_choice(params, "sort", BOARD_SORTS)
        current = roster()
        with _reading(engine) as connection:
            result = analytics.board_page(
                connection, filters, now=now, page=page, page_size=page_size, sort=sort,
                recommend_team=lambda reason: recommended_team(current, reason))
            warnings = analytics.unknown_facet_warnings(
                connection, filters, [team.id for team in current.teams])
        if params.get("format") == "csv":
            rows = [[_board_cell(row, column) for column in BOARD_CSV_COLUMNS]
                    for row in result.rows]
            return _csv_response("board", BOARD_CSV_COLUMNS, rows)
        return JSONResponse({"generated_at": now.isoformat(), "filters": _shown(filters),
                             "total": result.total, "page": result.page,
                             "page_size": result.page_size, "rows": result.rows,
                             "warnings": warnings},
                            headers={"Cache-Control": "no-store"})

    @router.get("/api/{name}", dependencies=secured)
    def table(name: str, request: Request) -> Response:
        params = dict(request.query_params)
        dataset, _, extension = name.partition(".")
        if extension == "csv":
            params["format"] = "csv"
        if dataset == "board" and extension in ("csv", "json"):
            return board_response(params)
        query = TABLES.get(dataset)
        if query is None or extension not in ("", "csv", "json"):
            raise HTTPException(status_code=404, detail=(
                f"no dashboard dataset {name[:60]!r}; available: board, "
                + ", ".join(TABLES) + " (each also as .json and .csv), and options"))
        filters = parse_filters(params, now=datetime.now(UTC), default_window=HISTORY_WINDOW)
        with _reading(engine) as connection:
            result = query(connection, filters)
            warnings = analytics.unknown_facet_warnings(
                connection, filters, [team.id for team in roster().teams])
        if params.get("format") == "csv":
            return _csv_response(result.name, result.columns, result.rows)
        return JSONResponse({"name": result.name, "filters": _shown(filters),
                             "columns": list(result.columns),
                             "rows": [list(row) for row in result.rows],
                             "total": result.total, "warnings": warnings},
                            headers={"Cache-Control": "no-store"})

    return router


def recommended_team(roster: Roster, reason: str | None) -> str:
    """Return the team routing would queue a conversation with `reason` on (general if None)."""
    category = Reason(reason) if reason else Reason.GENERAL
    return roster.team_for(roster.skill_for(category)).id


def plotly_bundle_path() -> Path:
    """Return the path of plotly.min.js inside the installed `plotly` package.

    The package is located without importing it, because importing plotly is slow and pulls
    in modules the service never uses.
    """
    spec = importlib.util.find_spec("plotly")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "package_data" / PLOTLY_FILE
        if path.is_file():
            return path
    raise HTTPException(status_code=503, detail=(
        "plotly.min.js was not found: the dashboard charts need the `plotly` package; install "
        "the serve extra (pip install 'escalation-scoring[serve]')"))


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """Yield a read connection, turning a database failure into 503 and a bad argument into
    422."""
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as error:
        raise _unavailable(error) from None
    except ValueError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None


def _unavailable(error: SQLAlchemyError) -> HTTPException:
    logger.error("dashboard query failed: %s", type(error).__name__)
    return HTTPException(status_code=503, detail=(
        "the prediction log database is unavailable; retry later, and check DATABASE_URL "
        "and /readyz"))


def _csv_response(name: str, columns: tuple[str, ...], rows: list[Any]) -> Response:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(to_csv(columns, rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="escalation-{name}-{stamp}.csv"',
        "Cache-Control": "no-store"})


def _board_cell(row: dict[str, Any], column: str) -> Any:
    if column == "signals":
        return " ".join(str(signal["code"]) for signal in row["signals"])
    return row[column]


def _shown(filters: AnalyticsFilters) -> dict[str, Any]:
    return {"from": filters.start.isoformat(), "to": filters.end.isoformat(),
            "team": filters.team, "reason": filters.reason, "bundle": filters.bundle,
            "bucket": filters.bucket_unit}
