"""Filters, result tables, dialect-specific SQL and the per-conversation facts of the analytics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Float,
    Subquery,
    Text,
    case,
    cast,
    extract,
    func,
    select,
    type_coerce,
)

from serving.store.tables import UTCDateTime, outcomes, routing_results, scored_turns
from serving.tiers import Reason

BucketUnit = Literal["hour", "day"]

# The rule that fires when the customer requests a person. A handoff first decided on the turn
# where it fired came only after that request, so quality reports count it as late.
HUMAN_REQUEST_RULE = "human_request"
CLOSED_STATUS = "closed"
# Ranges up to this long are bucketed by hour, longer ones by day.
HOURLY_BUCKETS_UP_TO = timedelta(days=3)


@dataclass(frozen=True)
class AnalyticsFilters:
    """The analyst's selection: a half-open UTC time range [start, end) and optional facets.

    `team` matches the team of a conversation's latest routing, `reason` the reason category of
    its first escalating turn, and `bundle` the bundle that made its deciding prediction (the
    first escalating turn, else the last turn).
    """

    start: datetime
    end: datetime
    team: str | None = None
    reason: str | None = None
    bundle: str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name} {value.isoformat()} has no time zone; pass an aware "
                                 "datetime, e.g. datetime.now(UTC)")
        if self.end <= self.start:
            raise ValueError(f"the range ends ({self.end.isoformat()}) at or before it starts "
                             f"({self.start.isoformat()}); pick an end after the start")

    @property
    def bucket_unit(self) -> BucketUnit:
        """Time bucket of the history charts: hours for short ranges, days otherwise."""
        return "hour" if self.end - self.start <= HOURLY_BUCKETS_UP_TO else "day"


@dataclass(frozen=True)
class ResultTable:
    """One chart's data: named columns and rows, ready for JSON or CSV.

    `total` is the number of matching rows before paging, for paged tables; otherwise None.
    """

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    total: int | None = None

    def records(self) -> list[dict[str, Any]]:
        """Return the rows as dictionaries keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# ------------------------------------------------------------------------------ dialect SQL


def seconds_between(
    later: ColumnElement[Any], earlier: ColumnElement[Any], dialect: str
) -> ColumnElement[float]:
    """Return the SQL for `later - earlier` in seconds on `dialect` (sqlite or postgresql)."""
    if dialect == "sqlite":
        return type_coerce((func.julianday(later) - func.julianday(earlier)) * 86_400.0, Float)
    return type_coerce(extract("epoch", later - earlier), Float)


def time_bucket(column: ColumnElement[Any], unit: BucketUnit, dialect: str) -> ColumnElement[str]:
    """Return the SQL for the UTC hour or day of `column` as text 'YYYY-MM-DD HH:00:00'."""
    if dialect == "sqlite":
        # SQLite stores the timestamps as naive UTC text, which strftime reads directly.
        pattern = "%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00"
        return type_coerce(func.strftime(pattern, column), Text)
    truncated = func.date_trunc(unit, func.timezone("UTC", column))
    return type_coerce(func.to_char(truncated, "YYYY-MM-DD HH24:00:00"), Text)


def parse_bucket(text: str) -> datetime:
    """Return the UTC datetime of a bucket label written by `time_bucket`."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """Return SUM(CASE WHEN condition THEN 1 ELSE 0 END), which works on both databases."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def earliest(column: ColumnElement[Any], condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """Return MIN(column) over the rows meeting `condition`, read back as a UTC datetime."""
    return type_coerce(func.min(case((condition, column))), UTCDateTime())


def ratio(numerator: int, denominator: int) -> float | None:
    """Return numerator / denominator, or None when the denominator is zero."""
    return numerator / denominator if denominator else None


# ------------------------------------------------------------------------------ facts


def conversation_starts(filters: AnalyticsFilters) -> Subquery:
    """Return conversation_id and started_at of each conversation whose first turn (turn 0)
    was logged in the range. The (turn_index, created_at, conversation_id) index covers it."""
    turns = scored_turns
    return (
        select(turns.c.conversation_id,
               type_coerce(func.min(turns.c.created_at), UTCDateTime()).label("started_at"))
        .where(turns.c.turn_index == 0, turns.c.created_at >= filters.start,
               turns.c.created_at < filters.end)
        .group_by(turns.c.conversation_id)
        .subquery("starts")
    )


def has_facets(filters: AnalyticsFilters) -> bool:
    """Return whether a team, reason or bundle filter is set."""
    return any(value is not None for value in (filters.team, filters.reason, filters.bundle))


def conversation_facts(filters: AnalyticsFilters) -> Subquery:
    """Return one row per conversation that started in the range and matches the facets.

    Columns: conversation_id, started_at, turns, max_probability, escalated_at,
    agent_joined_at, reason, tier, bundle, human_requested (1 when the first escalating turn
    is where the customer asked for a person), team, agent, has_outcome, outcome_escalated,
    resolved, csat, handle_seconds and outcome_agent. A conversation whose turns have no
    escalation has NULL escalated_at, reason and tier.
    """
    turns = scored_turns
    starts = conversation_starts(filters)
    # The aggregates read only columns of the conversation summary index (rev0003), so SQLite
    # computes them from the index without visiting the table rows.
    per_conversation = (
        select(
            starts.c.conversation_id,
            func.min(starts.c.started_at).label("started_at"),
            func.count().label("turns"),
            func.max(turns.c.id).label("last_id"),
            func.min(case((turns.c.escalate, turns.c.id))).label("first_escalation_id"),
            earliest(turns.c.created_at, turns.c.role == "agent").label("agent_joined_at"),
            func.max(turns.c.escalation_probability).label("max_probability"),
        )
        .select_from(starts)
        .join(turns, turns.c.conversation_id == starts.c.conversation_id)
        .group_by(starts.c.conversation_id)
        .subquery("per_conversation")
    )

    first_turn = scored_turns.alias("first_escalation")
    last_turn = scored_turns.alias("last_turn")
    routing = routing_results.alias("latest_routing")
    outcome = outcomes.alias("latest_outcome")
    bundle = func.coalesce(first_turn.c.bundle, last_turn.c.bundle)
    asked = cast(first_turn.c.rule_matches, Text).like(f'%"{HUMAN_REQUEST_RULE}"%')

    query = (
        select(
            per_conversation.c.conversation_id,
            type_coerce(per_conversation.c.started_at, UTCDateTime()).label("started_at"),
            per_conversation.c.turns,
            per_conversation.c.max_probability,
            first_turn.c.created_at.label("escalated_at"),
            per_conversation.c.agent_joined_at,
            first_turn.c.reason_category.label("reason"),
            first_turn.c.tier.label("tier"),
            bundle.label("bundle"),
            case((asked, 1), else_=0).label("human_requested"),
            routing.c.team.label("team"),
            routing.c.agent.label("agent"),
            case((outcome.c.id.is_not(None), 1), else_=0).label("has_outcome"),
            outcome.c.escalated.label("outcome_escalated"),
            outcome.c.resolved.label("resolved"),
            outcome.c.csat.label("csat"),
            outcome.c.handle_seconds.label("handle_seconds"),
            outcome.c.agent_id.label("outcome_agent"),
        )
        .select_from(per_conversation)
        .outerjoin(first_turn, first_turn.c.id == per_conversation.c.first_escalation_id)
        .join(last_turn, last_turn.c.id == per_conversation.c.last_id)
        .outerjoin(routing, routing.c.id == latest_routing_id(per_conversation.c.conversation_id))
        .outerjoin(outcome, outcome.c.id == latest_outcome_id(per_conversation.c.conversation_id))
    )
    if filters.team is not None:
        query = query.where(routing.c.team == filters.team)
    if filters.reason is not None:
        query = query.where(first_turn.c.reason_category == filters.reason)
    if filters.bundle is not None:
        query = query.where(bundle == filters.bundle)
    return query.subquery("facts")


def latest_routing_id(conversation_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """Return the id of the latest routing row other than a closure of `conversation_id`.

    A correlated subquery: each lookup is one probe of the conversation_id index, where a
    grouped subquery joined in is recomputed per row by SQLite.
    """
    return (select(func.max(routing_results.c.id))
            .where(routing_results.c.conversation_id == conversation_id,
                   routing_results.c.status != CLOSED_STATUS)
            .scalar_subquery())


def latest_outcome_id(conversation_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """Return the id of the latest outcome of `conversation_id`, which supersedes earlier ones."""
    return (select(func.max(outcomes.c.id))
            .where(outcomes.c.conversation_id == conversation_id)
            .scalar_subquery())


def is_true(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """Return `column = true` for a boolean column of an outer join (NULL counts as false)."""
    return type_coerce(column, Boolean()).is_(True)


# ------------------------------------------------------------------------------ options


def unknown_facet_warnings(connection: Connection, filters: AnalyticsFilters,
                           roster_teams: list[str]) -> list[str]:
    """Return one warning per team or bundle filter that matches nothing at any time.

    A team is known when the roster names it or a routing was logged for it, and a bundle when
    a turn was logged with it. The reason filter needs no check because parsing admits only
    the reason categories.
    """
    warnings = []
    team = filters.team
    if team is not None and team not in roster_teams:
        routed = connection.execute(
            select(routing_results.c.id).where(routing_results.c.team == team).limit(1)
        ).first()
        if routed is None:
            warnings.append(f"team {team!r} is not in the roster and no conversation was "
                            "routed to it; pick a team from the filter list.")

    bundle = filters.bundle
    if bundle is not None:
        logged = connection.execute(
            select(scored_turns.c.id).where(scored_turns.c.bundle == bundle).limit(1)
        ).first()
        if logged is None:
            warnings.append(f"bundle {bundle!r} has not scored any logged turn; pick a bundle "
                            "from the filter list.")
    return warnings


def filter_options(connection: Connection, roster_teams: list[str]) -> dict[str, list[str]]:
    """Return the values offered in the filter lists: teams, reasons and logged bundles."""
    bundles = connection.execute(
        select(scored_turns.c.bundle).distinct().order_by(scored_turns.c.bundle)
    ).scalars()
    routed_teams = connection.execute(
        select(routing_results.c.team).where(routing_results.c.team.is_not(None)).distinct()
    ).scalars()
    teams = list(dict.fromkeys([*roster_teams, *sorted(str(team) for team in routed_teams)]))
    return {
        "teams": teams,
        "reasons": [reason.value for reason in Reason],
        "bundles": [str(bundle) for bundle in bundles],
    }
