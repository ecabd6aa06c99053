"""Speed benchmark of the dashboard endpoints over a prediction log seeded with synthetic turns.

Run it from the repository root (PostgreSQL: pass its URL; the tables go to a new schema that
is dropped afterwards):

    .venv/bin/python -m benchmarks.dashboard_speed [--turns 100000] [--repeats 5]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

It seeds the log through `PredictionLog` (real decisions from `decide`, routing, handoffs,
outcomes), then requests every dashboard endpoint in process through the real FastAPI router
and prints the median and maximum time of each. The last output line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from serving.decision import Decision, DecisionThresholds, decide
from serving.rules import RuleMatch
from serving.store import (
    Outcome,
    PredictionLog,
    create_store_engine,
    parse_database_url,
    upgrade_database,
)
from serving.tiers import Reason, Tier

THRESHOLDS = DecisionThresholds(escalation=0.6, prepare=0.4)
BUNDLES = ("escalation-20261101", "escalation-20261201")
TEAM_AGENTS = {
    Reason.GENERAL: ("general", ("ana.silva", "ben.okafor")),
    Reason.URGENT: ("general", ("chloe.martin", "maria.costa")),
    Reason.TECHNICAL: ("technical", ("dev.rao", "erik.lund", "fatima.haddad")),
    Reason.BILLING: ("billing", ("gus.reyes", "hana.sato")),
    Reason.ACCOUNT: ("accounts", ("ivan.petrov", "julia.weber")),
    Reason.SALES: ("sales", ("kofi.mensah", "lena.novak")),
}
RULES = (("human_request", Tier.IMMEDIATE, None), ("billing_dispute", Tier.IMMEDIATE,
         Reason.BILLING), ("technical_complexity", Tier.RAPID, Reason.TECHNICAL),
         ("frustration_language", Tier.RAPID, None), ("long_unresolved", Tier.SCHEDULED, None))
SENTIMENT = {"negative": 0.5, "neutral": 0.3, "positive": 0.2}
ENDPOINTS = ("board", "volume", "reasons", "waits", "latency", "agents", "handbacks",
             "quality", "calibration", "bundles", "missed", "options")


@dataclass(frozen=True)
class SeedSummary:
    """Counts and time span of the turns that `seed_prediction_log` wrote."""

    conversations: int
    turns: int
    open_conversations: int
    start: datetime
    end: datetime


def seed_prediction_log(log: PredictionLog, *, turns: int, end: datetime, days: float = 30.0,
                        open_share: float = 0.05, seed: int = 7) -> SeedSummary:
    """Write about `turns` turns of synthetic conversations started over `days` before `end`.

    Conversations alternate customer and assistant turns. Those that escalate get a routing,
    a handoff package and an agent reply; all but the newest `open_share` get an outcome and
    a closure. The older half is scored by the first bundle, the newer by the second.
    """
    generator = random.Random(seed)
    start = end - timedelta(days=days)
    written = conversations = open_count = 0
    with log.transaction() as bound:
        while written < turns:
            length = min(generator.randint(4, 16), turns - written)
            begun = start + timedelta(seconds=generator.uniform(0, days * 86_400 - 3_600))
            is_open = begun > end - timedelta(days=days * open_share)
            bundle = BUNDLES[0] if begun < start + timedelta(days=days / 2) else BUNDLES[1]
            written += _seed_conversation(bound, generator, f"seed-{conversations:06d}",
                                          length, begun, is_open, bundle)
            conversations += 1
            open_count += is_open
    return SeedSummary(conversations, written, open_count, start, end)


def _seed_conversation(log: PredictionLog, generator: random.Random, conversation_id: str,
                       length: int, begun: datetime, is_open: bool, bundle: str) -> int:
    risk = generator.uniform(0.05, 0.5)
    matches: list[RuleMatch] = []
    moment = begun
    escalated_at: datetime | None = None
    reason = Reason.GENERAL
    # Some agents hand the conversation back; from then on the earlier signals are held back
    # as in serving.live, so the log shows prevented re-escalations.
    hands_back = generator.random() < 0.15
    held_back: tuple[set[str], float] | None = None
    agent_spoke = False
    for index in range(length):
        role = _next_role(index, agent_spoke, escalated_at is not None, hands_back, held_back)
        agent_spoke = agent_spoke or role == "agent"
        if role == "assistant" and escalated_at is not None and held_back is None:
            held_back = ({match.rule for match in matches}, risk)
        if role == "customer":
            risk = min(0.99, max(0.01, risk + generator.gauss(0.05, 0.12)))
            if generator.random() < 0.06:
                rule, tier, hinted = generator.choice(RULES)
                matches.append(RuleMatch(rule=rule, tier=tier, reason=hinted, turn_index=index,
                                         description=f"{rule} cue"))
        decision = _decision(risk, index, matches, held_back)
        fired = [match for match in matches if match.turn_index == index]
        log.record_turn(conversation_id, turn_index=index, role=role, text=f"turn {index}",
                        bundle=bundle, escalation_probability=risk,
                        sentiment=SENTIMENT if role == "customer" else None,
                        frustration=risk * 0.8 if role == "customer" else None,
                        decision=decision, rule_matches=fired,
                        latency_ms=generator.uniform(4, 40), created_at=moment)
        if decision.escalate and escalated_at is None:
            escalated_at = moment
            reason = decision.reason_category or Reason.GENERAL
            _seed_handoff(log, generator, conversation_id, decision, reason, moment)
        moment += timedelta(seconds=generator.uniform(15, 240))

    if not is_open:
        _seed_outcome(log, generator, conversation_id, escalated_at, reason, moment)
    return length


def _next_role(index: int, agent_spoke: bool, escalated: bool, hands_back: bool,
               held_back: tuple[set[str], float] | None) -> str:
    if index % 2 == 0:
        return "customer"
    if not escalated or held_back is not None:
        return "assistant"
    # The agent replies once. An agent who hands back lets the assistant take the next reply.
    return "assistant" if hands_back and agent_spoke else "agent"


def _decision(risk: float, index: int, matches: list[RuleMatch],
              held_back: tuple[set[str], float] | None) -> Decision:
    if held_back is None:
        return decide(risk, index, matches, THRESHOLDS)
    suppressed, probability_at_handback = held_back
    kept = [match for match in matches if match.rule not in suppressed]
    if risk >= probability_at_handback + 0.10:
        return decide(risk, index, kept, THRESHOLDS)
    base = decide(0.0, index, kept, THRESHOLDS)
    return Decision(base.tier, base.escalate, base.prepare_agent or risk >= THRESHOLDS.prepare,
                    risk, THRESHOLDS, base.reasons, base.reason_category)


def _seed_handoff(log: PredictionLog, generator: random.Random, conversation_id: str,
                  decision: Decision, reason: Reason, moment: datetime) -> None:
    team, agents = TEAM_AGENTS[reason]
    queued = generator.random() < 0.2
    log.record_routing(conversation_id, status="queued" if queued else "assigned",
                       payload={"tier": decision.tier.value}, rule="skill", team=team,
                       agent=None if queued else generator.choice(agents), level="L1",
                       queue_position=1 if queued else None,
                       estimated_wait_seconds=generator.uniform(30, 600) if queued else None,
                       created_at=moment)
    log.record_handoff(conversation_id, package_id=f"{conversation_id}-{uuid.uuid4().hex[:8]}",
                       package={"tier": decision.tier.value}, created_at=moment)


def _seed_outcome(log: PredictionLog, generator: random.Random, conversation_id: str,
                  escalated_at: datetime | None, reason: Reason, moment: datetime) -> None:
    # Outcomes agree with the prediction most of the time, so precision and recall sit near 0.8.
    escalated = (escalated_at is not None) != (generator.random() < 0.2)
    agents = TEAM_AGENTS[reason][1]
    log.record_outcome(Outcome(
        conversation_id=conversation_id, escalated=escalated,
        resolved=generator.random() < 0.8, csat=generator.randint(1, 5),
        agent_id=generator.choice(agents) if escalated else None,
        handle_seconds=generator.uniform(60, 1_800) if escalated else None, recorded_at=moment))
    log.record_routing(conversation_id, status="closed", payload={"closed": True},
                       created_at=moment)


def time_endpoints(client: Any, repeats: int, query: str) -> dict[str, dict[str, float]]:
    """Request each dashboard endpoint `repeats` times and return median and max milliseconds."""
    timings: dict[str, dict[str, float]] = {}
    for name in ENDPOINTS:
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get(f"/dashboard/api/{name}?{query}")
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"/dashboard/api/{name} returned {response.status_code}: "
                                   f"{response.text[:300]}")
        timings[name] = {"median_ms": round(statistics.median(samples), 1),
                         "max_ms": round(max(samples), 1)}
    return timings


@contextmanager
def benchmark_database(url: str | None, folder: Path) -> Iterator[tuple[str, Engine]]:
    """Yield the URL and engine of an empty migrated database: a SQLite file in `folder`, or a
    new schema on the PostgreSQL server at `url`, dropped on exit."""
    if url is None:
        url = f"sqlite:///{folder / 'dashboard.db'}"
        upgrade_database(url)
        engine = create_store_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()
        return

    schema = f"dashboard_bench_{uuid.uuid4().hex[:10]}"
    admin = create_store_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(parse_database_url(url).render_as_string(hide_password=False))
    scoped_url = scoped.update_query_dict({"options": f"-csearch_path={schema}"}) \
        .render_as_string(hide_password=False)
    upgrade_database(scoped_url)
    engine = create_store_engine(scoped_url)
    try:
        yield scoped_url, engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100_000, help="turns to seed")
    parser.add_argument("--repeats", type=int, default=5, help="requests per endpoint")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL; default: a new SQLite file in a temporary folder")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, \
            benchmark_database(arguments.database_url, Path(folder)) as (url, engine):
        log = PredictionLog(engine)
        started = time.perf_counter()
        summary = seed_prediction_log(log, turns=arguments.turns, end=datetime.now(UTC))
        seed_seconds = time.perf_counter() - started
        print(f"seeded {summary.turns} turns in {summary.conversations} conversations "
              f"({summary.open_conversations} open) in {seed_seconds:.1f} s")

        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from serving.dashboard import create_dashboard_router
        from serving.roster import load_roster
        from serving.service import DEFAULT_ROSTER_PATH
        from serving.settings import load_settings

        settings = load_settings({"ESCALATION_AUTH_DISABLED": "true", "DATABASE_URL": url})
        roster = load_roster(DEFAULT_ROSTER_PATH)
        app = FastAPI()
        app.include_router(create_dashboard_router(engine, settings, lambda: roster))
        full_range = (f"from={summary.start.isoformat()}&to="
                      f"{(summary.end + timedelta(hours=1)).isoformat()}").replace("+", "%2B")
        results = {"default range": time_endpoints(TestClient(app), arguments.repeats, ""),
                   "whole log": time_endpoints(TestClient(app), arguments.repeats, full_range)}

    for label, timings in results.items():
        print(f"\n{label}:")
        for name, figures in timings.items():
            print(f"  {name:<12} median {figures['median_ms']:8.1f} ms   "
                  f"max {figures['max_ms']:8.1f} ms")
    print(json.dumps({"backend": engine.dialect.name, "turns": summary.turns,
                      "conversations": summary.conversations, "seed_seconds": seed_seconds,
                      "repeats": arguments.repeats, "timings": results}))


if __name__ == "__main__":
    main()
