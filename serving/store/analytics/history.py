"""History charts: escalation volume and rate, reasons, waits, latency, agents and handbacks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Text, and_, case, cast, func, or_, select

from serving.store.analytics.common import (
    AnalyticsFilters,
    BucketUnit,
    ResultTable,
    conversation_facts,
    conversation_starts,
    count_where,
    has_facets,
    is_true,
    parse_bucket,
    ratio,
    seconds_between,
    time_bucket,
)
from serving.store.tables import scored_turns
from serving.tiers import TIER_SLA_SECONDS, Tier


def volume_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return conversations started, escalations and the escalation rate per hour or day.

    A conversation counts in the bucket where it started. The wait is the time from the first
    escalating turn to the first agent message, over the conversations an agent joined.
    """
    facts = conversation_facts(filters)
    dialect = connection.dialect.name
    bucket = time_bucket(facts.c.started_at, filters.bucket_unit, dialect).label("bucket")
    wait = _wait_seconds(facts, dialect)
    query = (
        select(
            bucket,
            func.count().label("conversations"),
            count_where(facts.c.escalated_at.is_not(None)).label("escalations"),
            func.avg(wait).label("average_wait_seconds"),
            func.max(wait).label("max_wait_seconds"),
        )
        .group_by(bucket)
        .order_by(bucket)
    )
    found = {row.bucket: row for row in connection.execute(query)}
    columns = ("bucket", "conversations", "escalations", "escalation_rate",
               "average_wait_seconds", "max_wait_seconds")
    rows: list[tuple[Any, ...]] = []
    for label in _bucket_labels(list(found), filters.bucket_unit):
        row = found.get(label)
        if row is None:
            rows.append((label, 0, 0, None, None, None))
            continue
        rows.append((label, row.conversations, row.escalations,
                     ratio(row.escalations, row.conversations),
                     _float(row.average_wait_seconds), _float(row.max_wait_seconds)))
    return ResultTable("volume", columns, rows)


def reason_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return escalations per reason category, with their share and average wait."""
    facts = conversation_facts(filters)
    wait = _wait_seconds(facts, connection.dialect.name)
    query = (
        select(facts.c.reason, func.count().label("escalations"),
               func.avg(wait).label("average_wait_seconds"))
        .where(facts.c.escalated_at.is_not(None))
        .group_by(facts.c.reason)
        .order_by(func.count().desc(), facts.c.reason)
    )
    found = list(connection.execute(query))
    total = sum(row.escalations for row in found)
    rows = [(row.reason or "unknown", row.escalations, ratio(row.escalations, total),
             _float(row.average_wait_seconds)) for row in found]
    return ResultTable("reasons", ("reason", "escalations", "share", "average_wait_seconds"),
                       rows)


def wait_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return, per tier of the first escalating turn, how long customers waited for an agent.

    `within_sla` counts the joins no later than the tier's SLA. The immediate tier's SLA is
    0 seconds, so only an agent message in the same instant meets it.
    """
    facts = conversation_facts(filters)
    wait = _wait_seconds(facts, connection.dialect.name)
    sla = case(*[(facts.c.tier == tier.value, seconds) for tier, seconds in
                 TIER_SLA_SECONDS.items() if seconds is not None])
    query = (
        select(
            facts.c.tier,
            func.count().label("escalations"),
            count_where(wait.is_not(None)).label("agent_joined"),
            count_where(wait <= sla).label("within_sla"),
            func.avg(wait).label("average_wait_seconds"),
            func.max(wait).label("max_wait_seconds"),
        )
        .where(facts.c.escalated_at.is_not(None))
        .group_by(facts.c.tier)
    )
    found = {row.tier: row for row in connection.execute(query)}
    columns = ("tier", "sla_seconds", "escalations", "agent_joined", "within_sla",
               "average_wait_seconds", "max_wait_seconds")
    rows: list[tuple[Any, ...]] = []
    for tier in (Tier.IMMEDIATE, Tier.RAPID, Tier.SCHEDULED):
        row = found.get(tier.value)
        if row is None:
            rows.append((tier.value, tier.sla_seconds, 0, 0, 0, None, None))
            continue
        rows.append((tier.value, tier.sla_seconds, row.escalations, row.agent_joined,
                     row.within_sla, _float(row.average_wait_seconds),
                     _float(row.max_wait_seconds)))
    return ResultTable("waits", columns, rows)


def latency_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return the service's scoring latency per hour or day over the turns in the range.

    Only the time range and the bundle filter apply: latency belongs to a turn, not to a
    team or reason.
    """
    turns = scored_turns
    bucket = time_bucket(turns.c.created_at, filters.bucket_unit,
                         connection.dialect.name).label("bucket")
    query = (
        select(bucket, func.count().label("turns"),
               func.avg(turns.c.latency_ms).label("average_latency_ms"),
               func.max(turns.c.latency_ms).label("max_latency_ms"))
        .where(turns.c.created_at >= filters.start, turns.c.created_at < filters.end)
        .group_by(bucket)
        .order_by(bucket)
    )
    if filters.bundle is not None:
        query = query.where(turns.c.bundle == filters.bundle)
    found = {row.bucket: row for row in connection.execute(query)}
    rows: list[tuple[Any, ...]] = []
    for label in _bucket_labels(list(found), filters.bucket_unit):
        row = found.get(label)
        rows.append((label, 0, None, None) if row is None else
                    (label, row.turns, _float(row.average_latency_ms),
                     _float(row.max_latency_ms)))
    return ResultTable("latency", ("bucket", "turns", "average_latency_ms", "max_latency_ms"),
                       rows)


def agent_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return per agent: handoffs, outcomes, resolution rate, CSAT and average handle time.

    A conversation belongs to the agent named in its outcome, else to the agent its latest
    routing assigned.
    """
    facts = conversation_facts(filters)
    agent = func.coalesce(facts.c.outcome_agent, facts.c.agent)
    with_outcome = facts.c.has_outcome == 1
    query = (
        select(
            agent.label("agent"),
            func.max(facts.c.team).label("team"),
            count_where(facts.c.escalated_at.is_not(None)).label("handoffs"),
            count_where(with_outcome).label("outcomes"),
            count_where(with_outcome & is_true(facts.c.resolved)).label("resolved"),
            func.avg(facts.c.csat).label("average_csat"),
            func.count(facts.c.csat).label("csat_responses"),
            func.avg(facts.c.handle_seconds).label("average_handle_seconds"),
        )
        .where(agent.is_not(None))
        .group_by(agent)
        .order_by(agent)
    )
    rows = [(row.agent, row.team, row.handoffs, row.outcomes, row.resolved,
             ratio(row.resolved, row.outcomes), _float(row.average_csat), row.csat_responses,
             _float(row.average_handle_seconds)) for row in connection.execute(query)]
    columns = ("agent", "team", "handoffs", "outcomes", "resolved", "resolution_rate",
               "average_csat", "csat_responses", "average_handle_seconds")
    return ResultTable("agents", columns, rows)


def handback_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return the re-escalations that handbacks prevented, by cause.

    `decide` escalates whenever the probability reaches the threshold or any rule fires, so a
    logged turn with either and no escalation was held back only by a handback's suppression.
    """
    turns = scored_turns
    # Without facets every conversation that started in the range counts, and the cheap
    # starts subquery gives the same set as the full facts.
    population = conversation_facts(filters) if has_facets(filters) \
        else conversation_starts(filters)
    by_model = turns.c.escalation_probability >= turns.c.escalation_threshold
    by_rule = cast(turns.c.rule_matches, Text) != "[]"
    prevented = and_(~turns.c.escalate, or_(by_model, by_rule))
    by_rule_only = ~by_model & by_rule
    query = (
        select(
            count_where(by_model).label("model_turns"),
            func.count(func.distinct(case((by_model, turns.c.conversation_id))))
            .label("model_conversations"),
            count_where(by_rule_only).label("rule_turns"),
            func.count(func.distinct(case((by_rule_only, turns.c.conversation_id))))
            .label("rule_conversations"),
        )
        .where(prevented, turns.c.conversation_id.in_(select(population.c.conversation_id)))
    )
    row = connection.execute(query).one()
    rows = [("model probability", row.model_turns, row.model_conversations),
            ("rule signal", row.rule_turns, row.rule_conversations)]
    return ResultTable("handbacks", ("held_back_signal", "turns", "conversations"), rows)


def _wait_seconds(facts: Any, dialect: str) -> Any:
    joined_after = facts.c.agent_joined_at >= facts.c.escalated_at
    return case((joined_after, seconds_between(facts.c.agent_joined_at, facts.c.escalated_at,
                                               dialect)))


def _bucket_labels(found: list[str], unit: BucketUnit) -> list[str]:
    """Return every bucket from the first found to the last, so the chart shows gaps as zero."""
    if not found:
        return []
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    moment, last = parse_bucket(min(found)), parse_bucket(max(found))
    labels = []
    while moment <= last:
        labels.append(moment.strftime("%Y-%m-%d %H:%M:%S"))
        moment += step
    return labels


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

