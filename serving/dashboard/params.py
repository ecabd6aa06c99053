"""Query parameters of the dashboard's data routes, parsed into analytics filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException

from serving.schema import MAX_ID_CHARS
from serving.store.analytics import AnalyticsFilters
from serving.tiers import Reason

FILTER_PARAMETERS = ("from", "to", "team", "reason", "bundle")
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def parse_filters(params: Mapping[str, str], *, now: datetime,
                  default_window: timedelta) -> AnalyticsFilters:
    """Return the filters of a request, or raise HTTPException 422 naming a bad parameter.

    `from` and `to` are ISO 8601 dates or datetimes; one without an offset is read as UTC.
    Without `from` the range starts `default_window` before `to`, and `to` defaults to `now`.
    """
    end = _moment(params, "to") or now
    start = _moment(params, "from") or _window_start(params, end, default_window)
    if end <= start:
        raise _invalid("to", params.get("to", end.isoformat()),
                       f"a time after 'from' ({start.isoformat()})")

    reason = _facet(params, "reason")
    allowed = [member.value for member in Reason]
    if reason is not None and reason not in allowed:
        raise _invalid("reason", reason, "one of " + ", ".join(allowed))
    return AnalyticsFilters(start=start, end=end, team=_facet(params, "team"), reason=reason,
                            bundle=_facet(params, "bundle"))


def parse_int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Return the integer parameter `name` within [low, high], or `default` when absent."""
    raw = params.get(name, "").strip()
    if not raw:
        return default
    # str.isdigit also accepts superscript and full-width digits, which int() rejects or reads.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise _invalid(name, raw, f"an integer from {low} to {high}")
    return int(raw)


def parse_choice(params: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """Return the parameter `name` when it is one of `choices`, or the first choice when absent."""
    raw = params.get(name, "").strip()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise _invalid(name, raw, "one of " + ", ".join(choices))
    return raw


def _moment(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        # fromisoformat of Python 3.11 reads dates, a trailing Z and offsets.
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(name, raw, "an ISO 8601 date or datetime, e.g. 2026-12-01 or "
                       "2026-12-01T08:00:00Z") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # An offset can move 0001-01-01 or 9999-12-31 outside the years datetime supports.
        raise _invalid(name, raw, f"a time between {_EARLIEST.isoformat()} and "
                       f"{_LATEST.isoformat()} once converted to UTC") from None


def _window_start(params: Mapping[str, str], end: datetime, window: timedelta) -> datetime:
    try:
        return end - window
    except OverflowError:
        raise _invalid("to", params.get("to", end.isoformat()),
                       f"a time after {(_EARLIEST + window).isoformat()}, or a 'from' "
                       "parameter as well") from None


def _facet(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if len(raw) > MAX_ID_CHARS:
        raise _invalid(name, raw, f"at most {MAX_ID_CHARS} characters")
    return raw


def _invalid(name: str, value: str, allowed: str) -> HTTPException:
    shown = value if len(value) <= 60 else value[:60] + "..."
    return HTTPException(status_code=422, detail=(
        f"query parameter '{name}' is invalid (got {shown!r}); expected {allowed}"))
