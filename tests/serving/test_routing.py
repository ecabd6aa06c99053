"""Tests of the router: priority rules, fallbacks, queues, overflow, escalation and threads."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest

from serving.errors import EscalationLimitError, RoutingLookupError
from serving.roster import EXAMPLE_ROSTER_PATH, Level, Roster, load_roster, roster_from_dict
from serving.routing import Router, RoutingRequest, RoutingResult, RoutingRule
from serving.schema import CustomerProfile
from serving.tiers import Reason, Tier

START = 1_000.0


class ManualClock:
    """A clock the test moves by hand, so overflow and wait times are exact."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


TEAMS: list[dict[str, Any]] = [
    {"id": "general", "name": "General support", "skills": ["general"]},
    {"id": "technical", "name": "Technical support", "skills": ["technical"],
     "overflow_team": "general", "overflow_after_seconds": 120},
    {"id": "billing", "name": "Billing", "skills": ["billing", "refunds"],
     "overflow_team": "general", "overflow_after_seconds": 300},
    {"id": "accounts", "name": "Account management", "skills": ["account"]},
]


def agent(agent_id: str, team: str, level: str = "L1", capacity: int = 1,
          **extra: Any) -> dict[str, Any]:
    return {"id": agent_id, "name": agent_id.title(), "team": team, "level": level,
            "capacity": capacity, **extra}


def make_roster(*agents: dict[str, Any], teams: list[dict[str, Any]] | None = None) -> Roster:
    return roster_from_dict({"teams": teams or TEAMS, "agents": list(agents)}, source="test")


def request(conversation_id: str, reason: Reason = Reason.TECHNICAL, **fields: Any
            ) -> RoutingRequest:
    return RoutingRequest(conversation_id=conversation_id, reason=reason, **fields)


def vip(customer_id: str = "vip-1", **flags: Any) -> CustomerProfile:
    return CustomerProfile(customer_id=customer_id, vip=True, **flags)


def enterprise(customer_id: str = "ent-1") -> CustomerProfile:
    return CustomerProfile(customer_id=customer_id, enterprise=True)


def loads(router: Router) -> dict[str, int]:
    return {item["id"]: item["load"] for item in router.snapshot()["agents"]}


def queue_ids(router: Router, team_id: str) -> list[str]:
    teams = {team["id"]: team for team in router.snapshot()["teams"]}
    return [entry["conversation_id"] for entry in teams[team_id]["queue"]]


# ----------------------------------------------------------------------------- VIP rule


def test_vip_goes_to_own_account_manager() -> None:
    router = Router(make_roster(
        agent("a-any", "accounts", "L2", dedicated_account_manager=True),
        agent("a-own", "accounts", "L3", account_manager_for=["vip-1"]),
        agent("g1", "general"),
    ))

    result = router.route(request("c1", Reason.TECHNICAL, customer=vip()))

    assert result.agent_id == "a-own"
    assert result.rule is RoutingRule.VIP
    assert result.fallback_from is None
    assert "account manager of VIP customer vip-1" in result.explanation


def test_vip_own_manager_busy_goes_to_other_manager() -> None:
    router = Router(make_roster(
        agent("a-any", "accounts", "L2", dedicated_account_manager=True),
        agent("a-own", "accounts", "L3", status="busy", account_manager_for=["vip-1"]),
    ))

    result = router.route(request("c1", customer=vip()))

    assert result.agent_id == "a-any"
    assert result.rule is RoutingRule.VIP
    assert "own account manager is not free" in result.explanation


def test_vip_without_managers_free_falls_back_to_skill() -> None:
    router = Router(make_roster(
        agent("a-own", "accounts", "L3", status="away", account_manager_for=["vip-1"]),
        agent("t1", "technical"),
    ))

    result = router.route(request("c1", Reason.TECHNICAL, customer=vip()))

    assert result.agent_id == "t1"
    assert result.rule is RoutingRule.SKILL
    assert result.fallback_from is RoutingRule.VIP
    assert "no account manager at L1 or above was free" in result.explanation


def test_vip_enterprise_falls_back_to_senior_technical() -> None:
    router = Router(make_roster(
        agent("a-own", "accounts", "L3", load=1, account_manager_for=["vip-1"]),
        agent("t1", "technical"),
        agent("t2", "technical", "L2", senior_technical=True),
    ))

    result = router.route(request("c1", customer=vip(enterprise=True)))

    assert result.agent_id == "t2"
    assert result.rule is RoutingRule.ENTERPRISE
    assert result.fallback_from is RoutingRule.VIP


# ---------------------------------------------------------------------- enterprise rule


def test_enterprise_goes_to_senior_technical() -> None:
    router = Router(make_roster(
        agent("t1", "technical"),
        agent("t2", "technical", "L2", senior_technical=True),
    ))

    result = router.route(request("c1", Reason.TECHNICAL, customer=enterprise()))

    assert result.agent_id == "t2"
    assert result.rule is RoutingRule.ENTERPRISE
    assert result.level is Level.L2


def test_enterprise_senior_busy_falls_back_to_skill() -> None:
    router = Router(make_roster(
        agent("t1", "technical"),
        agent("t2", "technical", "L2", status="busy", senior_technical=True),
    ))

    result = router.route(request("c1", Reason.TECHNICAL, customer=enterprise()))

    assert result.agent_id == "t1"
    assert result.rule is RoutingRule.SKILL
    assert result.fallback_from is RoutingRule.ENTERPRISE


# -------------------------------------------------------------------------- urgent rule


def test_urgent_goes_to_least_loaded_covering_agent() -> None:
    router = Router(make_roster(
        agent("t1", "technical", capacity=4, load=2),
        agent("t2", "technical", capacity=4, load=1),
    ))

    result = router.route(request("c1", Reason.TECHNICAL, urgent=True, tier=Tier.IMMEDIATE))

    assert result.agent_id == "t2"
    assert result.rule is RoutingRule.URGENT


def test_urgent_queues_ahead_of_waiting_conversations() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("busy"))
    router.route(request("waiting-1", tier=Tier.IMMEDIATE))
    router.route(request("waiting-2", tier=Tier.RAPID))

    result = router.route(request("urgent", urgent=True, tier=Tier.SCHEDULED))

    assert result.status == "queued"
    assert result.rule is RoutingRule.URGENT
    assert result.queue_position == 1
    assert queue_ids(router, "technical") == ["urgent", "waiting-1", "waiting-2"]


def test_urgent_takes_freed_slot_first() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("busy"))
    router.route(request("waiting", tier=Tier.IMMEDIATE))
    router.route(request("urgent", urgent=True))

    results = router.release("busy", handle_seconds=60)

    assert [result.conversation_id for result in results] == ["urgent"]
    assert results[0].agent_id == "t1"


def test_urgent_dispute_prefers_refund_approver() -> None:
    router = Router(make_roster(
        agent("b1", "billing"),
        agent("b2", "billing", "L2", capacity=4, load=2, can_approve_refunds=True),
    ))

    result = router.route(request("c1", Reason.BILLING, urgent=True, billing_dispute=True))

    assert result.agent_id == "b2"
    assert result.rule is RoutingRule.URGENT


def test_urgent_reason_alone_routes_as_general() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("g1", "general")))

    result = router.route(request("c1", Reason.URGENT))

    assert result.agent_id == "g1"
    assert result.rule is RoutingRule.URGENT


# ------------------------------------------------------------------ billing dispute rule


def test_billing_dispute_goes_to_refund_approver() -> None:
    router = Router(make_roster(
        agent("b1", "billing"),
        agent("b2", "billing", "L2", capacity=3, load=2, can_approve_refunds=True),
    ))

    result = router.route(request("c1", Reason.BILLING, billing_dispute=True))

    assert result.agent_id == "b2"
    assert result.rule is RoutingRule.BILLING_DISPUTE
    assert result.fallback_from is None


def test_billing_dispute_approver_full_falls_back_to_skill() -> None:
    router = Router(make_roster(
        agent("b1", "billing"),
        agent("b2", "billing", "L2", load=1, can_approve_refunds=True),
    ))

    result = router.route(request("c1", Reason.BILLING, billing_dispute=True))

    assert result.agent_id == "b1"
    assert result.rule is RoutingRule.SKILL
    assert result.fallback_from is RoutingRule.BILLING_DISPUTE
    assert "no billing specialist who can approve refunds was free" in result.explanation


# --------------------------------------------------------------------------- skill rule


def test_skill_picks_lowest_load_ratio() -> None:
    router = Router(make_roster(
        agent("t-a", "technical", capacity=2, load=1),
        agent("t-b", "technical", capacity=4, load=1),
    ))

    result = router.route(request("c1"))

    assert result.agent_id == "t-b"
    assert result.rule is RoutingRule.SKILL


def test_skill_ratio_tie_picks_fewer_conversations() -> None:
    router = Router(make_roster(
        agent("t-a", "technical", capacity=4, load=2),
        agent("t-b", "technical", capacity=2, load=1),
    ))

    assert router.route(request("c1")).agent_id == "t-b"


def test_skill_full_tie_picks_smallest_id() -> None:
    router = Router(make_roster(agent("t-b", "technical"), agent("t-a", "technical")))

    assert router.route(request("c1")).agent_id == "t-a"


def test_skill_counts_agent_skill_outside_team() -> None:
    router = Router(make_roster(agent("g1", "general", skills=["technical"])))

    result = router.route(request("c1", Reason.TECHNICAL))

    assert result.agent_id == "g1"


def test_skill_respects_min_level() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("t3", "technical", "L3")))

    result = router.route(request("c1", min_level=Level.L2))

    assert result.agent_id == "t3"


def test_topic_nobody_covers_routes_to_general() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("g1", "general")))

    result = router.route(request("c1", Reason.SALES))

    assert result.agent_id == "g1"


def test_away_and_busy_agents_skipped() -> None:
    router = Router(make_roster(
        agent("t-away", "technical", status="away"),
        agent("t-busy", "technical", status="busy"),
        agent("t-free", "technical", capacity=3, load=2),
    ))

    assert router.route(request("c1")).agent_id == "t-free"


def test_capacity_respected_then_queues() -> None:
    router = Router(make_roster(agent("t1", "technical", capacity=2)), clock=ManualClock())

    first = router.route(request("c1"))
    second = router.route(request("c2"))
    third = router.route(request("c3"))

    assert first.agent_id == "t1"
    assert second.agent_id == "t1"
    assert third.status == "queued"
    assert third.agent_id is None
    assert loads(router) == {"t1": 2}


def test_route_twice_returns_current_result() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    first = router.route(request("c1"))
    router.route(request("c2"))

    again = router.route(request("c1", Reason.BILLING))
    queued_again = router.route(request("c2"))

    assert again == first
    assert queued_again.queue_position == 1
    assert loads(router) == {"t1": 1}


def test_request_invalid_tier_raises() -> None:
    with pytest.raises(ValueError, match="tier 'soon' is invalid; use one of immediate"):
        RoutingRequest(conversation_id="c1", reason=Reason.BILLING, tier="soon")  # type: ignore[arg-type]


def test_request_string_fields_are_parsed() -> None:
    parsed = RoutingRequest(conversation_id="c1", reason="billing", tier="rapid",  # type: ignore[arg-type]
                            min_level="L2")  # type: ignore[arg-type]

    assert parsed.reason is Reason.BILLING
    assert parsed.tier is Tier.RAPID
    assert parsed.min_level is Level.L2


# ---------------------------------------------------------------------------- queueing


def test_queue_orders_by_tier_then_arrival() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("busy"))
    for conversation_id, tier in (("sched-1", Tier.SCHEDULED), ("rapid", Tier.RAPID),
                                  ("immediate", Tier.IMMEDIATE), ("sched-2", Tier.SCHEDULED)):
        router.route(request(conversation_id, tier=tier))

    assert queue_ids(router, "technical") == ["immediate", "rapid", "sched-1", "sched-2"]


def test_queued_result_names_team_and_overflow() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("busy"))

    result = router.route(request("c1"))

    assert result.team_id == "technical"
    assert result.rule is RoutingRule.SKILL
    assert result.overflow_team == "general"
    assert result.overflow_at == START + 120
    assert result.explanation == ("Queued at position 1 on team technical because every "
                                  "qualified agent is busy, away or at capacity; estimated "
                                  "wait 300 s.")


def test_vip_queues_on_account_manager_team() -> None:
    router = Router(make_roster(
        agent("a-own", "accounts", "L3", status="busy", account_manager_for=["vip-1"]),
        agent("t1", "technical", status="busy"),
    ), clock=ManualClock())

    result = router.route(request("c1", Reason.TECHNICAL, customer=vip()))

    assert result.status == "queued"
    assert result.team_id == "accounts"
    assert result.rule is RoutingRule.VIP


def test_queue_without_any_qualified_agent_says_so() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())

    result = router.route(request("c1", min_level=Level.L3))

    assert result.status == "queued"
    assert result.level is Level.L3
    assert "no agent in the roster covers technical at L3 or above" in result.explanation


def test_wait_estimate_with_default_handle_time() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("t2", "technical")),
                    default_handle_seconds=300, clock=ManualClock())
    router.route(request("busy-1"))
    router.route(request("busy-2"))

    waits = [router.route(request(f"q{index}")).estimated_wait_seconds for index in range(3)]

    # Team capacity 2: positions 1 and 2 wait one handle time, position 3 waits two.
    assert waits == [300.0, 300.0, 600.0]


def test_wait_estimate_uses_recent_handle_times() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("t2", "technical")),
                    default_handle_seconds=300, clock=ManualClock())
    for conversation_id in ("busy-1", "busy-2", "q0", "q1", "q2"):
        router.route(request(conversation_id))
    router.release("busy-1", handle_seconds=100)
    router.release("busy-2", handle_seconds=200)

    waits = [router.route(request(conversation_id)).estimated_wait_seconds
             for conversation_id in ("q2", "q3", "q4")]

    # Mean handle time (100 + 200) / 2 = 150; positions 1, 2, 3 over capacity 2.
    assert waits == [150.0, 150.0, 300.0]


def test_wait_estimate_keeps_last_window_only() -> None:
    router = Router(make_roster(agent("t1", "technical")), default_handle_seconds=300,
                    clock=ManualClock(), handle_time_window=2)
    for conversation_id, seconds in (("a", 100), ("b", 200), ("c", 600)):
        router.route(request(conversation_id))
        router.release(conversation_id, handle_seconds=seconds)
    router.route(request("busy"))

    result = router.route(request("waiting"))

    assert result.estimated_wait_seconds == 400.0


def test_wait_estimate_ignores_away_capacity() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("t2", "technical")),
                    default_handle_seconds=300, clock=ManualClock())
    router.route(request("busy-1"))
    router.route(request("busy-2"))
    router.set_status("t2", "away")
    router.route(request("q0"))

    result = router.route(request("q1"))

    # Only t1 (capacity 1) counts, so position 2 waits two handle times.
    assert result.estimated_wait_seconds == 600.0


# ---------------------------------------------------------------------------- overflow


def overflow_router(clock: ManualClock) -> Router:
    return Router(make_roster(
        agent("t1", "technical"),
        agent("g1", "general", status="busy"),
    ), clock=clock)


def test_overflow_not_before_configured_time() -> None:
    clock = ManualClock()
    router = overflow_router(clock)
    router.route(request("busy"))
    router.route(request("c1"))

    clock.now = START + 119.9

    assert router.tick() == []
    assert queue_ids(router, "technical") == ["c1"]


def test_overflow_moves_to_overflow_team() -> None:
    clock = ManualClock()
    router = overflow_router(clock)
    router.route(request("busy"))
    router.route(request("c1"))
    clock.now = START + 120

    moved = router.tick()

    assert len(moved) == 1
    assert moved[0].status == "queued"
    assert moved[0].team_id == "general"
    assert moved[0].rule is RoutingRule.OVERFLOW
    assert moved[0].overflow_at is None
    assert queue_ids(router, "general") == ["c1"]


def test_overflow_records_move_in_snapshot() -> None:
    clock = ManualClock()
    router = overflow_router(clock)
    router.route(request("busy"))
    router.route(request("c1"))
    clock.now = START + 150
    router.tick()

    general = next(team for team in router.snapshot()["teams"] if team["id"] == "general")

    assert general["queue"][0]["moves"] == [
        {"from_team": "technical", "to_team": "general", "at": START + 150}
    ]


def test_overflow_team_member_takes_conversation() -> None:
    clock = ManualClock()
    router = overflow_router(clock)
    router.route(request("busy"))
    router.route(request("c1"))
    clock.now = START + 120
    router.tick()

    results = router.set_status("g1", "available")

    assert [result.agent_id for result in results] == ["g1"]
    assert results[0].rule is RoutingRule.OVERFLOW
    assert results[0].fallback_from is RoutingRule.SKILL


def test_overflow_assigns_at_tick_when_member_free() -> None:
    clock = ManualClock()
    router = Router(make_roster(agent("t1", "technical"), agent("g1", "general")), clock=clock)
    router.route(request("busy"))
    router.route(request("c1"))
    clock.now = START + 121

    results = router.tick()

    assert len(results) == 1
    assert results[0].status == "assigned"
    assert results[0].agent_id == "g1"


# ----------------------------------------------------------------------------- release


def test_release_assigns_next_queued_conversation() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("c1"))
    router.route(request("c2"))
    router.route(request("c3"))

    results = router.release("c1", handle_seconds=90)

    assert [result.conversation_id for result in results] == ["c2"]
    assert results[0].agent_id == "t1"
    assert queue_ids(router, "technical") == ["c3"]


def test_release_skips_queue_head_the_agent_cannot_take() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("t3", "technical", "L3")),
                    clock=ManualClock())
    router.route(request("low"))
    router.route(request("high", min_level=Level.L3))
    router.route(request("needs-l3", min_level=Level.L3, tier=Tier.IMMEDIATE))
    router.route(request("plain"))

    results = router.release("low")

    assert [result.conversation_id for result in results] == ["plain"]


def test_release_queued_conversation_leaves_queue() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("c1"))
    router.route(request("c2"))

    results = router.release("c2")

    assert results == []
    assert queue_ids(router, "technical") == []


def test_release_unknown_conversation_raises() -> None:
    router = Router(make_roster(agent("t1", "technical")))

    with pytest.raises(RoutingLookupError, match="'nope' is neither assigned nor queued"):
        router.release("nope")


def test_release_negative_handle_time_raises() -> None:
    router = Router(make_roster(agent("t1", "technical")))
    router.route(request("c1"))

    with pytest.raises(ValueError, match="handle_seconds -5 is invalid"):
        router.release("c1", handle_seconds=-5)


# ---------------------------------------------------------------------------- escalate


def ladder_router() -> Router:
    return Router(make_roster(
        agent("t1", "technical", "L1"),
        agent("t2", "technical", "L2"),
        agent("t3", "technical", "L3"),
        agent("t4", "general", "L4", skills=["technical"]),
    ), clock=ManualClock())


def test_escalate_climbs_each_level() -> None:
    router = ladder_router()
    router.route(request("c1"))

    levels = [router.escalate("c1").agent_id for _ in range(3)]

    assert levels == ["t2", "t3", "t4"]
    assert loads(router) == {"t1": 0, "t2": 0, "t3": 0, "t4": 1}


def test_escalate_at_l4_raises() -> None:
    router = ladder_router()
    router.route(request("c1"))
    for _ in range(3):
        router.escalate("c1")

    with pytest.raises(EscalationLimitError, match="already at level L4, the top level"):
        router.escalate("c1")


def test_escalate_queued_raises_min_level() -> None:
    router = ladder_router()
    router.set_status("t2", "busy")
    router.set_status("t3", "busy")
    router.set_status("t4", "busy")
    router.route(request("busy"))
    router.route(request("c1"))

    result = router.escalate("c1")

    assert result.status == "queued"
    assert result.level is Level.L2


def test_escalate_unknown_conversation_raises() -> None:
    with pytest.raises(RoutingLookupError):
        ladder_router().escalate("nope")


# ------------------------------------------------------------------ status and roster


def test_set_status_available_drains_queue() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("t2", "technical",
                                                                  status="away")),
                    clock=ManualClock())
    router.route(request("c1"))
    router.route(request("c2"))

    results = router.set_status("t2", "available")

    assert [(result.conversation_id, result.agent_id) for result in results] == [("c2", "t2")]


def test_set_status_unknown_agent_raises() -> None:
    router = Router(make_roster(agent("t1", "technical")))

    with pytest.raises(RoutingLookupError, match="agent 'ghost' is not in the roster"):
        router.set_status("ghost", "available")


def test_set_status_invalid_status_raises() -> None:
    router = Router(make_roster(agent("t1", "technical")))

    with pytest.raises(ValueError, match="status 'lunch' is invalid; use one of available"):
        router.set_status("t1", "lunch")


def test_replace_roster_keeps_existing_assignments() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("b1", "billing")),
                    clock=ManualClock())
    router.route(request("c1", Reason.TECHNICAL))

    router.replace_roster(make_roster(agent("t1", "technical", capacity=2)))

    assert loads(router) == {"t1": 1}
    assert router.route(request("c1")).agent_id == "t1"


def test_replace_roster_reroutes_removed_agents() -> None:
    router = Router(make_roster(agent("t1", "technical"), agent("b1", "billing")),
                    clock=ManualClock())
    router.route(request("c1", Reason.BILLING))

    results = router.replace_roster(make_roster(agent("t1", "technical"),
                                                agent("b2", "billing")))

    assert [(result.conversation_id, result.agent_id) for result in results] == [("c1", "b2")]


def test_replace_roster_drains_queue_into_new_agents() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("c1"))
    router.route(request("c2"))

    results = router.replace_roster(make_roster(agent("t1", "technical"),
                                                agent("t9", "technical")))

    assert [(result.conversation_id, result.agent_id) for result in results] == [("c2", "t9")]


# ------------------------------------------------------------------------------ output


def test_snapshot_is_json_serialisable() -> None:
    router = Router(make_roster(agent("t1", "technical")), clock=ManualClock())
    router.route(request("c1"))
    router.route(request("c2", urgent=True))

    snapshot = json.loads(json.dumps(router.snapshot()))

    assert snapshot["assigned"] == 1
    assert snapshot["queued"] == 1
    assert snapshot["agents"][0]["conversations"] == ["c1"]
    assert snapshot["agents"][0]["level"] == "L1"


def test_result_to_dict_uses_plain_types() -> None:
    router = Router(make_roster(agent("t1", "technical", "L2")))

    payload = router.route(request("c1")).to_dict()

    assert json.loads(json.dumps(payload)) == payload
    assert payload["level"] == "L2"
    assert payload["rule"] == "skill"


def test_example_roster_routes_each_rule() -> None:
    router = Router(load_roster(EXAMPLE_ROSTER_PATH), clock=ManualClock())
    cases: list[tuple[RoutingRequest, RoutingRule, str]] = [
        (request("vip", Reason.BILLING, customer=vip("cust-1002")), RoutingRule.VIP,
         "ivan.petrov"),
        (request("ent", Reason.TECHNICAL, customer=enterprise()), RoutingRule.ENTERPRISE,
         "erik.lund"),
        (request("dispute", Reason.BILLING, billing_dispute=True),
         RoutingRule.BILLING_DISPUTE, "hana.sato"),
        (request("sales", Reason.SALES), RoutingRule.SKILL, "kofi.mensah"),
    ]

    for routing_request, rule, agent_id in cases:
        result = router.route(routing_request)
        assert (result.rule, result.agent_id) == (rule, agent_id), result.explanation


# ----------------------------------------------------------------------------- threads


def test_concurrent_routing_never_exceeds_capacity() -> None:
    roster = make_roster(
        agent("t1", "technical", capacity=2),
        agent("t2", "technical", capacity=3),
        agent("g1", "general", capacity=2, skills=["technical"]),
    )
    router = Router(roster)
    capacity = {agent.id: agent.capacity for agent in roster.agents}
    violations: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def worker(worker_id: int) -> None:
        generator = random.Random(worker_id)
        try:
            for index in range(60):
                conversation_id = f"w{worker_id}-{index}"
                router.route(request(conversation_id, tier=generator.choice(list(Tier))))
                current = loads(router)
                if any(current[agent_id] > capacity[agent_id] for agent_id in current):
                    violations.append(current)
                if generator.random() < 0.5:
                    router.release(conversation_id, handle_seconds=generator.uniform(1, 9))
        except BaseException as error:  # reported below with the thread's failure
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(worker_id,)) for worker_id in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    snapshot = router.snapshot()
    final_loads = {item["id"]: item["load"] for item in snapshot["agents"]}
    assert errors == []
    assert violations == []
    assert all(final_loads[agent_id] <= capacity[agent_id] for agent_id in capacity)
    assert snapshot["assigned"] == sum(final_loads.values())
    # Releases free slots that the queue takes at once, so no agent idles while others wait.
    assert snapshot["queued"] == 0 or snapshot["assigned"] == sum(capacity.values())


def test_results_are_frozen() -> None:
    result = Router(make_roster(agent("t1", "technical"))).route(request("c1"))

    with pytest.raises(AttributeError):
        result.agent_id = "other"  # type: ignore[misc]
    assert isinstance(result, RoutingResult)
