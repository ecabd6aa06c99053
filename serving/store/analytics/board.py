"""The live board: open conversations with their risk, SLA countdown, signals and team, paged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, case, exists, func, select, type_coerce

from serving.store.analytics.common import (
    CLOSED_STATUS,
    AnalyticsFilters,
    earliest,
    latest_routing_id,
)
from serving.store.tables import UTCDateTime, outcomes, routing_results, scored_turns
from serving.tiers import TIER_SLA_SECONDS, Tier

BOARD_SORTS: tuple[str, ...] = ("probability", "waiting", "recent")
MAX_PAGE_SIZE = 200
TREND_POINTS = 10
# Tiers whose SLA starts a countdown, with the column holding their first escalating turn.
_SLA_TIERS: tuple[Tier, ...] = (Tier.IMMEDIATE, Tier.RAPID, Tier.SCHEDULED)


@dataclass(frozen=True)
class BoardPage:
    """One page of open conversations and the number of open conversations in all pages."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


def board_page(
    connection: Connection,
    filters: AnalyticsFilters,
    *,
    now: datetime,
    page: int = 1,
    page_size: int = 50,
    sort: str = "probability",
    recommend_team: Callable[[str | None], str | None] = lambda reason: None,
) -> BoardPage:
    """Return one page of the open conversations with a turn in the filter's range.

    A conversation is open while it has no closure in routing_results and no outcome. `now`
    sets the SLA countdowns. `recommend_team` maps a reason category (None before any
    escalation) to the team routing would pick, shown for conversations not yet routed.
    """
    if page < 1:
        raise ValueError(f"page is {page}; pages are numbered from 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size is {page_size}; it must be 1 to {MAX_PAGE_SIZE}")
    if sort not in BOARD_SORTS:
        raise ValueError(f"sort {sort!r} is invalid; use one of {', '.join(BOARD_SORTS)}")

    query, order = _open_conversations(filters)
    # The window count gives the total from the same evaluation as the page. A page past the
    # end has no row to carry it, so only then does a separate count run.
    paged = (query.add_columns(func.count().over().label("total")).order_by(*order[sort])
             .limit(page_size).offset((page - 1) * page_size))
    found = list(connection.execute(paged))
    if found:
        total = int(found[0].total)
    else:
        total = int(connection.execute(select(func.count()).select_from(query.subquery()))
                    .scalar_one())
    rows = [_board_row(row, now, recommend_team) for row in found]

    trends = board_trends(connection, [row["conversation_id"] for row in rows])
    for row in rows:
        points = trends.get(row["conversation_id"], [])
        row["probability_history"] = points
        row["trend"] = points[-1] - points[-2] if len(points) >= 2 else None
    return BoardPage(rows, total, page, page_size)


def board_trends(connection: Connection, conversation_ids: Sequence[str],
                 points: int = TREND_POINTS) -> dict[str, list[float]]:
    """Return the escalation probabilities of the last `points` customer turns of each
    conversation, oldest first."""
    if not conversation_ids:
        return {}
    turns = scored_turns
    rank = func.row_number().over(partition_by=turns.c.conversation_id,
                                  order_by=turns.c.turn_index.desc())
    ranked = (
        select(turns.c.conversation_id, turns.c.turn_index, turns.c.escalation_probability,
               rank.label("rank"))
        .where(turns.c.conversation_id.in_(list(conversation_ids)), turns.c.role == "customer")
        .subquery("ranked")
    )
    query = (select(ranked.c.conversation_id, ranked.c.escalation_probability)
             .where(ranked.c.rank <= points)
             .order_by(ranked.c.conversation_id, ranked.c.turn_index))
    trends: dict[str, list[float]] = {}
    for conversation_id, probability in connection.execute(query):
        trends.setdefault(conversation_id, []).append(float(probability))
    return trends


def _open_conversations(filters: AnalyticsFilters) -> tuple[Select[Any], dict[str, list[Any]]]:
    turns = scored_turns
    active = (
        select(turns.c.conversation_id)
        .where(turns.c.created_at >= filters.start, turns.c.created_at < filters.end)
        .distinct()
        .subquery("active")
    )
    # Closed conversations are dropped before the aggregates, which then run over the open
    # conversations only, however many closed ones the range holds.
    closed = exists().where(routing_results.c.conversation_id == active.c.conversation_id,
                            routing_results.c.status == CLOSED_STATUS)
    has_outcome = exists().where(outcomes.c.conversation_id == active.c.conversation_id)
    open_ids = select(active.c.conversation_id).where(~closed, ~has_outcome)
    tier_columns = [
        earliest(turns.c.created_at, turns.c.escalate & (turns.c.tier == tier.value))
        .label(f"{tier.value}_at")
        for tier in _SLA_TIERS
    ]
    per_conversation = (
        select(
            turns.c.conversation_id,
            func.max(turns.c.id).label("last_id"),
            func.max(case((turns.c.role == "customer", turns.c.id))).label("last_customer_id"),
            func.count().label("turns"),
            type_coerce(func.min(turns.c.created_at), UTCDateTime()).label("started_at"),
            type_coerce(func.max(turns.c.created_at), UTCDateTime()).label("last_at"),
            earliest(turns.c.created_at, turns.c.escalate).label("escalated_at"),
            type_coerce(func.max(case((turns.c.role == "agent", turns.c.created_at))),
                        UTCDateTime()).label("agent_at"),
            *tier_columns,
        )
        .where(turns.c.conversation_id.in_(open_ids))
        .group_by(turns.c.conversation_id)
        .subquery("per_conversation")
    )

    last_turn = scored_turns.alias("last_turn")
    last_customer = scored_turns.alias("last_customer")
    routing = routing_results.alias("latest_routing")

    query = (
        select(
            per_conversation,
            last_turn.c.escalation_probability,
            last_turn.c.escalation_threshold,
            last_turn.c.tier,
            last_turn.c.escalate,
            last_turn.c.prepare_agent,
            last_turn.c.reason_category,
            last_turn.c.bundle,
            last_turn.c.reasons,
            last_customer.c.frustration,
            last_customer.c.sentiment_negative,
            routing.c.status.label("routing_status"),
            routing.c.team,
            routing.c.agent,
            routing.c.queue_position,
            routing.c.estimated_wait_seconds,
        )
        .select_from(per_conversation)
        .join(last_turn, last_turn.c.id == per_conversation.c.last_id)
        .outerjoin(last_customer, last_customer.c.id == per_conversation.c.last_customer_id)
        .outerjoin(routing, routing.c.id == latest_routing_id(per_conversation.c.conversation_id))
    )
    if filters.team is not None:
        query = query.where(routing.c.team == filters.team)
    if filters.reason is not None:
        query = query.where(last_turn.c.reason_category == filters.reason)
    if filters.bundle is not None:
        query = query.where(last_turn.c.bundle == filters.bundle)

    # Waiting means escalated with no agent message since the first escalation.
    waiting = per_conversation.c.escalated_at.is_not(None) & (
        per_conversation.c.agent_at.is_(None)
        | (per_conversation.c.agent_at < per_conversation.c.escalated_at))
    tie_break = per_conversation.c.conversation_id
    order = {
        "probability": [last_turn.c.escalation_probability.desc(),
                        per_conversation.c.last_at.desc(), tie_break],
        "waiting": [case((waiting, 0), else_=1), per_conversation.c.escalated_at,
                    last_turn.c.escalation_probability.desc(), tie_break],
        "recent": [per_conversation.c.last_at.desc(), tie_break],
    }
    return query, order


def _board_row(row: Row[Any], now: datetime,
               recommend_team: Callable[[str | None], str | None]) -> dict[str, Any]:
    values = row._asdict()
    escalated_at: datetime | None = values["escalated_at"]
    agent_at: datetime | None = values["agent_at"]
    # NOTE: after a handback and a second escalation the agent's earlier messages count as
    # joined, so such a conversation shows "with agent" and no countdown.
    waiting = escalated_at is not None and (agent_at is None or agent_at < escalated_at)
    deadline = _sla_deadline(values) if waiting else None

    if waiting:
        status = "waiting for agent"
    elif escalated_at is not None:
        status = "with agent"
    elif values["prepare_agent"]:
        status = "prepare agent"
    else:
        status = "assistant"

    return {
        "conversation_id": values["conversation_id"],
        "status": status,
        "escalation_probability": values["escalation_probability"],
        "escalation_threshold": values["escalation_threshold"],
        "tier": values["tier"],
        "reason": values["reason_category"],
        "signals": _signals(values["reasons"]),
        "frustration": values["frustration"],
        "sentiment_negative": values["sentiment_negative"],
        "escalated_at": _iso(escalated_at),
        "sla_deadline": _iso(deadline),
        "sla_seconds_left": (deadline - now).total_seconds() if deadline else None,
        "routing_status": values["routing_status"],
        "team": values["team"],
        "agent": values["agent"],
        "queue_position": values["queue_position"],
        "recommended_team": None if values["team"] else recommend_team(values["reason_category"]),
        "bundle": values["bundle"],
        "turns": values["turns"],
        "started_at": _iso(values["started_at"]),
        "last_activity": _iso(values["last_at"]),
    }


def _sla_deadline(values: dict[str, Any]) -> datetime | None:
    """Return the earliest deadline set by any escalating tier: its first turn plus its SLA."""
    deadlines = []
    for tier in _SLA_TIERS:
        started: datetime | None = values[f"{tier.value}_at"]
        seconds = TIER_SLA_SECONDS[tier]
        if started is not None and seconds is not None:
            deadlines.append(started + timedelta(seconds=seconds))
    return min(deadlines, default=None)


def _signals(reasons: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    # Evidence is left out on purpose: it quotes the customer's message.
    return [{"source": reason.get("source"), "code": reason.get("code"),
             "tier": reason.get("tier"), "description": reason.get("description")}
            for reason in reasons or []]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
