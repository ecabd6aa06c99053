"""Fixtures of the dashboard tests: migrated databases on both backends and a hand-built log.

The scenario below is small enough to count by hand. The expected figures in the tests come
from the comments here, not from running the queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from serving.auth import generate_api_key
from serving.dashboard import create_dashboard_router
from serving.decision import Decision, DecisionThresholds, decide
from serving.roster import load_roster
from serving.rules import RuleMatch
from serving.settings import load_settings
from serving.store import Outcome, PredictionLog, create_store_engine, upgrade_database
from serving.store.analytics import AnalyticsFilters
from serving.store.analytics.reader import create_reader_engine
from serving.tiers import Reason, Tier
from tests.conftest import REPOSITORY
from tests.serving.test_store import empty_database

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROSTER_PATH = REPOSITORY / "serving" / "policies" / "roster.example.yaml"
THRESHOLDS = DecisionThresholds(escalation=0.6, prepare=0.4)
SENTIMENT = {"negative": 0.6, "neutral": 0.3, "positive": 0.1}
DAY_RANGE = AnalyticsFilters(start=T0 - timedelta(days=1), end=T0 + timedelta(minutes=1))


@dataclass(frozen=True)
class Databases:
    """A migrated database: its URL, the writer engine and a dashboard reader engine."""

    url: str
    writer: Engine
    reader: Engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """An empty migrated database on each backend (PostgreSQL skips when unreachable), shared
    by the tests of one module, which only read it."""
    with empty_database(request.param, tmp_path_factory.mktemp("dashboard")) as url:
        upgrade_database(url)
        writer = create_store_engine(url)
        reader = create_reader_engine(url)
        yield Databases(url, writer, reader)
        reader.dispose()
        writer.dispose()


@pytest.fixture(scope="module")
def scenario(databases: Databases) -> Databases:
    """The databases with the hand-built scenario recorded."""
    record_scenario(PredictionLog(databases.writer))
    return databases


def match(rule: str, tier: Tier, reason: Reason | None, turn_index: int) -> RuleMatch:
    return RuleMatch(rule=rule, tier=tier, reason=reason, turn_index=turn_index,
                     description=f"{rule} fired")


def held_back(probability: float, turn_index: int) -> Decision:
    """The decision serving.live makes after a handback: no escalation, real probability."""
    base = decide(0.0, turn_index, [], THRESHOLDS)
    return Decision(base.tier, False, probability >= THRESHOLDS.prepare, probability,
                    THRESHOLDS, base.reasons, base.reason_category)


def turn(log: PredictionLog, conversation_id: str, index: int, role: str, probability: float,
         at: datetime, bundle: str, matches: list[RuleMatch] | None = None,
         decision: Decision | None = None, fired: list[RuleMatch] | None = None) -> None:
    """Record one turn, deciding from `probability` and `matches` unless `decision` is given."""
    matches = matches or []
    chosen = decision or decide(probability, index, matches, THRESHOLDS)
    new = fired if fired is not None else [item for item in matches if item.turn_index == index]
    customer = role == "customer"
    log.record_turn(conversation_id, turn_index=index, role=role, text=f"{conversation_id} {index}",
                    bundle=bundle, escalation_probability=probability,
                    sentiment=SENTIMENT if customer else None,
                    frustration=0.5 if customer else None, decision=chosen, rule_matches=new,
                    latency_ms=10.0 + index, created_at=at)


def routed(log: PredictionLog, conversation_id: str, at: datetime, team: str,
           agent: str | None) -> None:
    log.record_routing(conversation_id, status="assigned" if agent else "queued",
                       payload={"team_id": team}, rule="skill", team=team, agent=agent,
                       level="L1", queue_position=None if agent else 1, created_at=at)


def closed(log: PredictionLog, conversation_id: str, at: datetime) -> None:
    log.record_routing(conversation_id, status="closed", payload={"closed": True},
                       created_at=at)


def outcome(log: PredictionLog, conversation_id: str, at: datetime, *, escalated: bool,
            resolved: bool, csat: int | None, agent: str | None,
            handle_seconds: float | None) -> None:
    log.record_outcome(Outcome(conversation_id=conversation_id, escalated=escalated,
                               resolved=resolved, csat=csat, agent_id=agent,
                               handle_seconds=handle_seconds, recorded_at=at))
    closed(log, conversation_id, at)


def record_scenario(log: PredictionLog) -> None:
    """Record ten conversations; nine start in DAY_RANGE, I starts 40 days earlier.

    A open, waiting: p .3 -> .7 with billing_dispute at turn 2 (immediate, billing), queued
      on billing, no agent yet; bundle b2.
    B open: one customer turn p .45 (prepare agent), never routed; bundle b1.
    C closed: p .8 with technical_complexity (rapid, technical), dev.rao joins after 90 s;
      outcome escalated, resolved, CSAT 5, 600 s; bundle b1.
    D missed: p .2 twice, never escalated; outcome escalated, unresolved, CSAT 2; bundle b1.
    E premature: p .65 (rapid, general), ana.silva joins after 200 s; outcome not escalated,
      resolved, CSAT 4, 300 s; bundle b2.
    F late: p .3, then .5 with human_request (immediate, general), ana.silva joins after 30 s;
      outcome escalated, resolved, CSAT 3, 900 s; bundle b2.
    G handback: p .7 (rapid, general), ben.okafor joins after 60 s and hands back. Turns 2
      and 3 hold back p .7 and .72, and turn 4 holds back a frustration_language rule at
      p .5. Outcome escalated, resolved, no CSAT; bundle b2.
    H true negative: p .1; outcome not escalated, resolved, CSAT 5; bundle b1.
    I old: p .9, 40 days before T0; outcome escalated; bundle b1.
    J closed without outcome: p .2; bundle b1.
    """
    minute = timedelta(minutes=1)

    start = T0 - 10 * minute
    billing = [match("billing_dispute", Tier.IMMEDIATE, Reason.BILLING, 2)]
    turn(log, "A", 0, "customer", 0.3, start, "b2")
    turn(log, "A", 1, "assistant", 0.3, start + 2 * minute, "b2")
    turn(log, "A", 2, "customer", 0.7, start + 4 * minute, "b2", billing)
    routed(log, "A", start + 4 * minute, "billing", None)

    turn(log, "B", 0, "customer", 0.45, T0 - 5 * minute, "b1")

    start = T0 - 120 * minute
    technical = [match("technical_complexity", Tier.RAPID, Reason.TECHNICAL, 0)]
    turn(log, "C", 0, "customer", 0.8, start, "b1", technical)
    routed(log, "C", start, "technical", "dev.rao")
    turn(log, "C", 1, "agent", 0.8, start + timedelta(seconds=90), "b1", technical)
    outcome(log, "C", start + 20 * minute, escalated=True, resolved=True, csat=5,
            agent="dev.rao", handle_seconds=600.0)

    start = T0 - 180 * minute
    turn(log, "D", 0, "customer", 0.2, start, "b1")
    turn(log, "D", 1, "assistant", 0.2, start + minute, "b1")
    outcome(log, "D", start + 10 * minute, escalated=True, resolved=False, csat=2, agent=None,
            handle_seconds=None)

    start = T0 - 240 * minute
    turn(log, "E", 0, "customer", 0.65, start, "b2")
    routed(log, "E", start, "general", "ana.silva")
    turn(log, "E", 1, "agent", 0.65, start + timedelta(seconds=200), "b2")
    outcome(log, "E", start + 15 * minute, escalated=False, resolved=True, csat=4,
            agent="ana.silva", handle_seconds=300.0)

    start = T0 - 300 * minute
    asked = [match("human_request", Tier.IMMEDIATE, None, 2)]
    turn(log, "F", 0, "customer", 0.3, start, "b2")
    turn(log, "F", 1, "assistant", 0.3, start + minute, "b2")
    turn(log, "F", 2, "customer", 0.5, start + 2 * minute, "b2", asked)
    routed(log, "F", start + 2 * minute, "general", "ana.silva")
    turn(log, "F", 3, "agent", 0.5, start + 2 * minute + timedelta(seconds=30), "b2", asked)
    outcome(log, "F", start + 30 * minute, escalated=True, resolved=True, csat=3,
            agent="ana.silva", handle_seconds=900.0)

    start = T0 - 360 * minute
    turn(log, "G", 0, "customer", 0.7, start, "b2")
    routed(log, "G", start, "general", "ben.okafor")
    turn(log, "G", 1, "agent", 0.7, start + minute, "b2")
    turn(log, "G", 2, "assistant", 0.7, start + 2 * minute, "b2", decision=held_back(0.7, 2))
    turn(log, "G", 3, "customer", 0.72, start + 3 * minute, "b2", decision=held_back(0.72, 3))
    frustration = [match("frustration_language", Tier.RAPID, None, 4)]
    turn(log, "G", 4, "customer", 0.5, start + 4 * minute, "b2", decision=held_back(0.5, 4),
         fired=frustration)
    outcome(log, "G", start + 40 * minute, escalated=True, resolved=True, csat=None,
            agent="ben.okafor", handle_seconds=None)

    start = T0 - 420 * minute
    turn(log, "H", 0, "customer", 0.1, start, "b1")
    outcome(log, "H", start + 5 * minute, escalated=False, resolved=True, csat=5, agent=None,
            handle_seconds=None)

    start = T0 - timedelta(days=40)
    turn(log, "I", 0, "customer", 0.9, start, "b1")
    outcome(log, "I", start + 5 * minute, escalated=True, resolved=True, csat=1, agent=None,
            handle_seconds=None)

    turn(log, "J", 0, "customer", 0.2, T0 - 30 * minute, "b1")
    closed(log, "J", T0 - 25 * minute)


# ------------------------------------------------------------------------------ HTTP apps

KEY, DIGEST = generate_api_key()
SESSION_SECRET = "dashboard-test-secret-" + "0" * 20
DAY_QUERY = {"from": DAY_RANGE.start.isoformat(), "to": DAY_RANGE.end.isoformat()}


def dashboard_app(url: str, **environment: str) -> FastAPI:
    """A FastAPI app serving only the dashboard router over the log at `url`.

    The API key KEY is accepted and sessions are signed with SESSION_SECRET unless
    `environment` overrides the variables.
    """
    settings = load_settings({"ESCALATION_API_KEY_HASHES": DIGEST, "DATABASE_URL": url,
                              "ESCALATION_SESSION_SECRET": SESSION_SECRET, **environment})
    roster = load_roster(ROSTER_PATH)
    app = FastAPI()
    app.include_router(create_dashboard_router(create_reader_engine(url), settings,
                                               lambda: roster))
    return app


@pytest.fixture(scope="module")
def scenario_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a SQLite log holding the hand-built scenario."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard-http') / 'log.db'}"
    upgrade_database(url)
    writer = create_store_engine(url)
    record_scenario(PredictionLog(writer))
    writer.dispose()
    return url
