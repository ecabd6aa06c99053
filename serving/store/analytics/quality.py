"""Prediction quality against recorded outcomes: precision, recall, timing, calibration, bundles.

The population is the conversations that started in the range and have an outcome. A
conversation is predicted to escalate when any of its logged turns escalated, and it truly
escalated when its latest outcome records an escalation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, func, select

from serving.store.analytics.common import (
    AnalyticsFilters,
    ResultTable,
    conversation_facts,
    count_where,
    is_true,
    ratio,
)

CALIBRATION_BINS = 10
MISSED_LIMIT = 100


def quality_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return the confusion counts, precision, recall and F1 of the escalation predictions,
    with true positives split into timely and late handoffs.

    Premature handoffs are false positives: the service escalated and the outcome records that
    no human was needed. Late handoffs are true positives first decided on the turn where the
    customer requested a person. Missed escalations are false negatives.
    """
    facts = conversation_facts(filters)
    predicted = facts.c.escalated_at.is_not(None)
    actual = is_true(facts.c.outcome_escalated)
    query = select(
        func.count().label("conversations"),
        count_where(facts.c.has_outcome == 1).label("with_outcome"),
        count_where(predicted & actual).label("true_positives"),
        count_where(predicted & ~actual & (facts.c.has_outcome == 1)).label("false_positives"),
        count_where(~predicted & actual).label("false_negatives"),
        count_where(~predicted & ~actual & (facts.c.has_outcome == 1)).label("true_negatives"),
        count_where(predicted & actual & (facts.c.human_requested == 1)).label("late"),
    )
    row = connection.execute(query).one()

    precision = ratio(row.true_positives, row.true_positives + row.false_positives)
    recall = ratio(row.true_positives, row.true_positives + row.false_negatives)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    values: list[tuple[str, Any]] = [
        ("conversations", row.conversations),
        ("with_outcome", row.with_outcome),
        ("true_positives", row.true_positives),
        ("false_positives", row.false_positives),
        ("false_negatives", row.false_negatives),
        ("true_negatives", row.true_negatives),
        ("precision", precision),
        ("recall", recall),
        ("f1", f1),
        ("missed_escalations", row.false_negatives),
        ("premature_handoffs", row.false_positives),
        ("late_handoffs", row.late),
        ("timely_handoffs", row.true_positives - row.late),
    ]
    return ResultTable("quality", ("metric", "value"), values)


def calibration_table(connection: Connection, filters: AnalyticsFilters,
                      bins: int = CALIBRATION_BINS) -> ResultTable:
    """Return the calibration curve: per probability bin, the mean of each conversation's
    highest escalation probability beside the share that truly escalated.

    The highest probability is the one that drove the decision. Bins are equal-width on [0, 1].
    """
    if bins < 2:
        raise ValueError(f"bins is {bins}; use at least 2")
    facts = conversation_facts(filters)
    probability = facts.c.max_probability
    # CASE instead of FLOOR: SQLite builds without the math functions lack FLOOR.
    bin_index = case(*[(probability < (index + 1) / bins, index) for index in range(bins - 1)],
                     else_=bins - 1).label("bin")
    query = (
        select(bin_index, func.count().label("conversations"),
               func.avg(probability).label("mean_probability"),
               count_where(is_true(facts.c.outcome_escalated)).label("escalated"))
        .where(facts.c.has_outcome == 1)
        .group_by(bin_index)
    )
    found = {row.bin: row for row in connection.execute(query)}
    rows: list[tuple[Any, ...]] = []
    for index in range(bins):
        row = found.get(index)
        lower, upper = index / bins, (index + 1) / bins
        if row is None:
            rows.append((index, lower, upper, 0, None, 0, None))
            continue
        rows.append((index, lower, upper, row.conversations, float(row.mean_probability),
                     row.escalated, ratio(row.escalated, row.conversations)))
    columns = ("bin", "lower", "upper", "conversations", "mean_probability", "escalated",
               "observed_rate")
    return ResultTable("calibration", columns, rows)


def bundle_table(connection: Connection, filters: AnalyticsFilters) -> ResultTable:
    """Return per bundle version: conversations decided, turns, outcomes, precision and recall."""
    facts = conversation_facts(filters)
    predicted = facts.c.escalated_at.is_not(None)
    actual = is_true(facts.c.outcome_escalated)
    query = (
        select(
            facts.c.bundle,
            func.count().label("conversations"),
            func.sum(facts.c.turns).label("turns"),
            count_where(facts.c.has_outcome == 1).label("with_outcome"),
            count_where(predicted).label("predicted"),
            count_where(predicted & actual).label("true_positives"),
            count_where(predicted & ~actual & (facts.c.has_outcome == 1)).label("false_positives"),
            count_where(~predicted & actual).label("false_negatives"),
            func.min(facts.c.started_at).label("first_started"),
            func.max(facts.c.started_at).label("last_started"),
        )
        .group_by(facts.c.bundle)
        .order_by(func.min(facts.c.started_at), facts.c.bundle)
    )
    rows = []
    for row in connection.execute(query):
        precision = ratio(row.true_positives, row.true_positives + row.false_positives)
        recall = ratio(row.true_positives, row.true_positives + row.false_negatives)
        rows.append((row.bundle, row.conversations, int(row.turns), row.with_outcome,
                     row.predicted, row.true_positives, row.false_positives,
                     row.false_negatives, precision, recall, _iso(row.first_started),
                     _iso(row.last_started)))
    columns = ("bundle", "conversations", "turns", "with_outcome", "predicted",
               "true_positives", "false_positives", "false_negatives", "precision", "recall",
               "first_started", "last_started")
    return ResultTable("bundles", columns, rows)


def missed_table(connection: Connection, filters: AnalyticsFilters,
                 limit: int = MISSED_LIMIT) -> ResultTable:
    """Return the missed escalations, highest probability first, with the bundle that scored
    them. `total` counts all of them, also when more than `limit` exist."""
    facts = conversation_facts(filters)
    missed = (facts.c.escalated_at.is_(None)) & is_true(facts.c.outcome_escalated)
    # The window count gives the total before LIMIT from the same evaluation of the facts.
    query = (
        select(facts.c.conversation_id, facts.c.started_at, facts.c.turns,
               facts.c.max_probability, facts.c.bundle, facts.c.team, facts.c.csat,
               func.count().over().label("total"))
        .where(missed)
        .order_by(facts.c.max_probability.desc(), facts.c.conversation_id)
        .limit(limit)
    )
    found = list(connection.execute(query))
    total = int(found[0].total) if found else 0
    rows = [(row.conversation_id, _iso(row.started_at), row.turns, row.max_probability,
             row.bundle, row.team, row.csat) for row in found]
    columns = ("conversation_id", "started_at", "turns", "max_probability", "bundle", "team",
               "csat")
    return ResultTable("missed", columns, rows, total=total)


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
