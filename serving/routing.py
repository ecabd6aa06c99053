"""Routing of escalated conversations to agents: priority rules, queues, overflow, escalation.

`Router.route` tries these rules in order, each only when it applies to the request:

1. vip_account_manager: a VIP customer goes to their own account manager (the agents whose
   `account_manager_for` lists the customer id), else to any agent with the account-manager
   role;
2. enterprise_senior_technical: an enterprise customer goes to a senior technical specialist;
3. urgent: an urgent conversation goes to the least-loaded free agent covering its topic,
   preferring agents who can approve refunds when it is also a billing dispute;
4. billing_dispute: a billing dispute goes to a billing specialist who can approve refunds;
5. skill: any conversation goes to the least-loaded free agent covering its topic.

Every rule also requires the agent's level to be at or above the request's `min_level`. An
agent is free when its status is available and its load is below its capacity. When the first
rule that applies finds no free agent, the next one is tried and the result records the first in
`fallback_from`. When no rule finds one, the conversation queues on the team of the first
rule's candidates. Queues are ordered by urgency, then tier severity, then arrival.

Whenever a slot frees up (`release`, `set_status`, `replace_roster`, `tick`), queued
conversations are placed again in queue order, so a free agent never idles while a queued
conversation it qualifies for waits. A conversation that waits past its team's
`overflow_after_seconds` moves to the team's `overflow_team` on the next `tick`, and from then
on the members of that team qualify for it whatever their skills (rule `overflow`).

NOTE: routing state (loads, assignments, queues, handle times) lives in this process and is
lost on restart. Several workers sharing one roster need a shared store (Redis or PostgreSQL)
behind the same lock discipline; until then run the router in one process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from serving.errors import EscalationLimitError, RoutingLookupError
from serving.roster import Agent, AgentStatus, Level, Roster, Skill, Team
from serving.schema import CustomerProfile
from serving.tiers import Reason, Tier

logger = logging.getLogger(__name__)

DEFAULT_HANDLE_SECONDS = 300.0
DEFAULT_HANDLE_TIME_WINDOW = 20

RoutingStatus = Literal["assigned", "queued"]


class RoutingRule(StrEnum):
    """The rule that picked the agent or the queue, in priority order."""

    VIP = "vip_account_manager"
    ENTERPRISE = "enterprise_senior_technical"
    URGENT = "urgent"
    BILLING_DISPUTE = "billing_dispute"
    SKILL = "skill"
    OVERFLOW = "overflow"


@dataclass(frozen=True)
class RoutingRequest:
    """An escalated conversation to place with an agent.

    `reason` is the topic. Reason.URGENT alone is accepted and routed as an urgent general
    conversation. `min_level` is the lowest agent level allowed to take it.
    """

    conversation_id: str
    reason: Reason
    urgent: bool = False
    tier: Tier = Tier.SCHEDULED
    customer: CustomerProfile | None = None
    billing_dispute: bool = False
    min_level: Level = Level.L1

    def __post_init__(self) -> None:
        if not isinstance(self.conversation_id, str) or not self.conversation_id:
            raise ValueError(f"conversation_id {self.conversation_id!r} is invalid; use a "
                             "non-empty string")
        object.__setattr__(self, "reason", _parse_enum(Reason, self.reason, "reason"))
        object.__setattr__(self, "tier", _parse_enum(Tier, self.tier, "tier"))
        object.__setattr__(self, "min_level", Level.parse(self.min_level))
        if self.customer is not None and not isinstance(self.customer, CustomerProfile):
            raise TypeError(f"customer must be a CustomerProfile or None, got "
                            f"{type(self.customer).__name__}")

    @property
    def topic(self) -> Reason:
        """The topic to route on: `reason`, or general when the reason is only urgency."""
        return Reason.GENERAL if self.reason is Reason.URGENT else self.reason

    @property
    def is_urgent(self) -> bool:
        """Whether the urgent flag is set or the reason is Reason.URGENT."""
        return self.urgent or self.reason is Reason.URGENT


def _parse_enum(kind: type[StrEnum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{name} {value!r} is invalid; use one of {allowed}") from None


@dataclass(frozen=True)
class RoutingResult:
    """Outcome of routing one conversation: an agent or a place in a team's queue, and why.

    `level` is the assigned agent's level, or for a queued conversation the lowest level that
    may take it. `rule` is the rule that picked the agent or the queue's team.
    """

    conversation_id: str
    status: RoutingStatus
    rule: RoutingRule
    fallback_from: RoutingRule | None
    team_id: str
    agent_id: str | None
    agent_name: str | None
    level: Level
    queue_position: int | None
    estimated_wait_seconds: float | None
    overflow_team: str | None
    overflow_at: float | None
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON types; times are seconds on the router's clock."""
        return {
            "conversation_id": self.conversation_id,
            "status": self.status,
            "rule": self.rule.value,
            "fallback_from": self.fallback_from.value if self.fallback_from else None,
            "team_id": self.team_id,
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "level": str(self.level),
            "queue_position": self.queue_position,
            "estimated_wait_seconds": self.estimated_wait_seconds,
            "overflow_team": self.overflow_team,
            "overflow_at": self.overflow_at,
            "explanation": self.explanation,
        }


# ------------------------------------------------------------------------------ state


@dataclass
class _AgentSlot:
    agent: Agent
    status: AgentStatus
    # Conversations the roster reported and the router did not assign itself.
    base_load: int
    conversations: list[str] = field(default_factory=list)

    @property
    def load(self) -> int:
        return self.base_load + len(self.conversations)

    @property
    def is_free(self) -> bool:
        return self.status is AgentStatus.AVAILABLE and self.load < self.agent.capacity


@dataclass
class _Assignment:
    request: RoutingRequest
    sequence: int
    agent_id: str
    result: RoutingResult
    overflow_teams: tuple[str, ...] = ()


@dataclass
class _QueueEntry:
    request: RoutingRequest
    sequence: int
    team_id: str
    rule: RoutingRule
    enqueued_at: float
    overflow_at: float | None
    overflow_teams: tuple[str, ...] = ()
    moves: list[dict[str, Any]] = field(default_factory=list)

    def priority(self) -> tuple[int, int, int]:
        return (0 if self.request.is_urgent else 1, -self.request.tier.severity, self.sequence)


@dataclass(frozen=True)
class _Step:
    """One routing rule that applies to a request, with its candidates in preference groups.

    Candidates qualify by role, skill and level whatever their status; the router picks the
    least-loaded free agent of the first group that has one.
    """

    rule: RoutingRule
    groups: tuple[tuple[Agent, ...], ...]

    @property
    def candidates(self) -> tuple[Agent, ...]:
        return tuple(agent for group in self.groups for agent in group)


@dataclass(frozen=True)
class _Choice:
    step: _Step
    agent: Agent
    group_index: int


# ------------------------------------------------------------------------------ router


class Router:
    """Assign escalated conversations to agents of a roster, queueing when no agent is free.

    Every public method holds one lock, so a Router may be shared by the threads of one
    process. Times come from `clock` (seconds, `time.time` by default).
    """

    def __init__(
        self,
        roster: Roster,
        *,
        default_handle_seconds: float = DEFAULT_HANDLE_SECONDS,
        clock: Callable[[], float] = time.time,
        handle_time_window: int = DEFAULT_HANDLE_TIME_WINDOW,
    ) -> None:
        if not (math.isfinite(default_handle_seconds) and default_handle_seconds > 0):
            raise ValueError(f"default_handle_seconds {default_handle_seconds!r} is invalid; "
                             "use a positive number of seconds")
        if handle_time_window < 1:
            raise ValueError(f"handle_time_window {handle_time_window!r} is invalid; use 1 or "
                             "more recent handle times per team")
        self.default_handle_seconds = float(default_handle_seconds)
        self.handle_time_window = handle_time_window
        self._clock = clock
        self._lock = threading.RLock()

        self._roster = roster
        self._slots = _slots_from(roster)
        self._assignments: dict[str, _Assignment] = {}
        self._queue: dict[str, _QueueEntry] = {}
        self._handle_times: dict[str, deque[float]] = {}
        self._next_sequence = 0

    @property
    def roster(self) -> Roster:
        """The roster the router currently routes to."""
        with self._lock:
            return self._roster

    # -------------------------------------------------------------------- public methods

    def route(self, request: RoutingRequest) -> RoutingResult:
        """Assign the conversation to a free qualified agent, or queue it.

        A conversation that is already assigned or queued keeps its place, and its current
        result is returned, because the caller may route again on every new message.
        """
        with self._lock:
            current = self._current_result(request.conversation_id)
            if current is not None:
                return current

            result = self._place(request, self._take_sequence(), overflow_teams=())
            logger.debug("routed conversation %s: %s by rule %s to team %s",
                         request.conversation_id, result.status, result.rule, result.team_id)
            return result

    def release(
        self, conversation_id: str, handle_seconds: float | None = None
    ) -> list[RoutingResult]:
        """End a conversation's routing and place queued conversations in the freed slot.

        For an assigned conversation the agent's slot is freed and `handle_seconds`, when
        given, joins the recent handle times of the agent's team. A queued conversation is
        taken out of its queue and `handle_seconds` is ignored. Returns the results of the
        queued conversations that got an agent as a consequence. Raises RoutingLookupError
        for an unknown id.
        """
        if handle_seconds is not None and not (math.isfinite(handle_seconds)
                                               and handle_seconds >= 0):
            raise ValueError(f"handle_seconds {handle_seconds!r} is invalid; use a "
                             "non-negative number of seconds or None")
        with self._lock:
            assignment = self._assignments.pop(conversation_id, None)
            if assignment is not None:
                slot = self._slots[assignment.agent_id]
                slot.conversations.remove(conversation_id)
                if handle_seconds is not None:
                    self._record_handle_time(slot.agent.team, float(handle_seconds))
            elif self._queue.pop(conversation_id, None) is None:
                raise RoutingLookupError(self._unknown_conversation(conversation_id))
            return self._drain()

    def escalate(self, conversation_id: str) -> RoutingResult:
        """Move a conversation one level up and route it again with the raised `min_level`.

        The level is that of the current agent, or the queued request's `min_level`. Raises
        EscalationLimitError at L4 and RoutingLookupError for an unknown id. The slot the
        conversation leaves goes to the queue at the next `release`, `set_status` or `tick`.
        """
        with self._lock:
            request, sequence, current_level = self._locate(conversation_id)
            next_level = current_level.next_level()
            if next_level is None:
                raise EscalationLimitError(
                    f"conversation {conversation_id!r} is already at level {current_level}, "
                    f"the top level ({current_level.description}); it cannot be escalated "
                    "further, so resolve it or reassign it by hand"
                )

            self._remove(conversation_id)
            raised = replace(request, min_level=next_level)
            result = self._place(raised, sequence, overflow_teams=())
            logger.info("escalated conversation %s from %s to %s: %s on team %s",
                        conversation_id, current_level, next_level, result.status,
                        result.team_id)
            return result

    def tick(self) -> list[RoutingResult]:
        """Move conversations past their overflow time to the overflow team, then place queued
        conversations with free agents.

        Returns the result of every conversation that moved or got an agent, so the service
        can notify them. Call it every few seconds.
        """
        with self._lock:
            now = self._clock()
            due = [entry for entry in self._queue.values()
                   if entry.overflow_at is not None and entry.overflow_at <= now]
            moved = [entry for entry in due if self._overflow(entry, now)]

            assigned = self._drain()
            assigned_ids = {result.conversation_id for result in assigned}
            still_queued = [self._queued_result(entry) for entry in moved
                            if entry.request.conversation_id not in assigned_ids]
            return [*assigned, *still_queued]

    def set_status(self, agent_id: str, status: AgentStatus | str) -> list[RoutingResult]:
        """Set an agent's status and place queued conversations if the agent became free.

        An agent who goes busy or away keeps the conversations already assigned. Returns the
        results of queued conversations that got an agent.
        """
        new_status = _parse_enum(AgentStatus, status, "status")
        with self._lock:
            slot = self._slots.get(agent_id)
            if slot is None:
                raise RoutingLookupError(f"agent {agent_id!r} is not in the roster; agents: "
                                         f"{', '.join(self._slots) or 'none'}")
            slot.status = new_status
            logger.info("agent %s status set to %s", agent_id, new_status)
            return self._drain()

    def replace_roster(self, roster: Roster) -> list[RoutingResult]:
        """Switch to a new roster, keeping the assignments of agents that are still in it.

        Statuses and base loads come from the new roster. Conversations of removed agents and
        queued conversations of removed teams are routed again in queue order, keeping their
        arrival order. A kept assignment stays even when it puts the agent above a lowered
        capacity; such an agent takes nothing new until enough conversations end. Returns the
        results of every conversation that was routed again or left the queue.
        """
        with self._lock:
            orphans = self._adopt_roster(roster)
            results = [self._place(request, sequence, overflow_teams=())
                       for request, sequence in orphans]
            results.extend(self._drain())
            logger.info("replaced roster: %d teams, %d agents, %d conversations routed again",
                        len(roster.teams), len(roster.agents), len(orphans))
            return results

    def snapshot(self) -> dict[str, Any]:
        """Return the agents with their loads and the teams with their queues as JSON types."""
        with self._lock:
            now = self._clock()
            return {
                "generated_at": now,
                "assigned": len(self._assignments),
                "queued": len(self._queue),
                "agents": [self._agent_snapshot(slot) for slot in self._slots.values()],
                "teams": [self._team_snapshot(team) for team in self._roster.teams],
            }

    # ------------------------------------------------------------------ placing requests

    def _place(
        self, request: RoutingRequest, sequence: int, *, overflow_teams: tuple[str, ...]
    ) -> RoutingResult:
        steps = self._steps(request, overflow_teams)
        choice = self._choose(steps)
        if choice is not None:
            return self._assign(request, sequence, steps, choice, overflow_teams)
        return self._enqueue(request, sequence, steps)

    def _steps(self, request: RoutingRequest, overflow_teams: tuple[str, ...]) -> list[_Step]:
        roster = self._roster
        level = request.min_level
        skill = roster.skill_for(request.topic)
        qualified = [agent for agent in roster.agents if agent.level >= level]
        customer = request.customer
        steps: list[_Step] = []

        if customer is not None and customer.vip:
            own = tuple(agent for agent in qualified if customer.customer_id is not None
                        and customer.customer_id in agent.account_manager_for)
            managers = tuple(agent for agent in qualified
                             if agent.is_account_manager and agent not in own)
            steps.append(_Step(RoutingRule.VIP, (own, managers)))
        if customer is not None and customer.enterprise:
            seniors = tuple(agent for agent in qualified
                            if agent.senior_technical and agent.level >= Level.L2)
            steps.append(_Step(RoutingRule.ENTERPRISE, (seniors,)))

        covering = tuple(agent for agent in qualified if roster.covers(agent, skill))
        approvers = tuple(agent for agent in qualified if agent.can_approve_refunds
                          and roster.covers(agent, Skill.BILLING))
        if request.is_urgent and request.billing_dispute:
            # An urgent dispute still needs someone who can settle it, when one is free.
            others = tuple(agent for agent in covering if agent not in approvers)
            steps.append(_Step(RoutingRule.URGENT, (approvers, others)))
        elif request.is_urgent:
            steps.append(_Step(RoutingRule.URGENT, (covering,)))
        if request.billing_dispute:
            steps.append(_Step(RoutingRule.BILLING_DISPUTE, (approvers,)))
        steps.append(_Step(RoutingRule.SKILL, (covering,)))

        if overflow_teams:
            members = tuple(agent for agent in qualified if agent.team in overflow_teams)
            steps.append(_Step(RoutingRule.OVERFLOW, (members,)))
        return steps

    def _choose(self, steps: Sequence[_Step]) -> _Choice | None:
        for step in steps:
            for group_index, group in enumerate(step.groups):
                free = [agent for agent in group if self._slots[agent.id].is_free]
                if free:
                    return _Choice(step, min(free, key=self._load_order), group_index)
        return None

    def _load_order(self, agent: Agent) -> tuple[float, int, str]:
        load = self._slots[agent.id].load
        return (load / agent.capacity, load, agent.id)

    def _assign(
        self,
        request: RoutingRequest,
        sequence: int,
        steps: Sequence[_Step],
        choice: _Choice,
        overflow_teams: tuple[str, ...],
    ) -> RoutingResult:
        agent = choice.agent
        first_rule = steps[0].rule
        fallback_from = first_rule if choice.step.rule is not first_rule else None
        explanation = _assigned_explanation(request, self._roster, steps, choice)
        result = RoutingResult(
            conversation_id=request.conversation_id,
            status="assigned",
            rule=choice.step.rule,
            fallback_from=fallback_from,
            team_id=agent.team,
            agent_id=agent.id,
            agent_name=agent.name,
            level=agent.level,
            queue_position=None,
            estimated_wait_seconds=None,
            overflow_team=None,
            overflow_at=None,
            explanation=explanation,
        )
        self._slots[agent.id].conversations.append(request.conversation_id)
        self._assignments[request.conversation_id] = _Assignment(
            request, sequence, agent.id, result, overflow_teams
        )
        return result

    def _enqueue(
        self, request: RoutingRequest, sequence: int, steps: Sequence[_Step]
    ) -> RoutingResult:
        rule, team = self._queue_target(request, steps)
        now = self._clock()
        entry = _QueueEntry(
            request=request,
            sequence=sequence,
            team_id=team.id,
            rule=rule,
            enqueued_at=now,
            overflow_at=_overflow_time(team, now),
        )
        self._queue[request.conversation_id] = entry
        return self._queued_result(entry)

    def _queue_target(
        self, request: RoutingRequest, steps: Sequence[_Step]
    ) -> tuple[RoutingRule, Team]:
        # The conversation waits where its highest-priority rule would have sent it, so a VIP
        # waits with their account manager's team rather than in the general queue.
        roster = self._roster
        skill_team = roster.team_for(roster.skill_for(request.topic))
        for step in steps:
            candidates = step.candidates
            if not candidates:
                continue
            if step.rule in {RoutingRule.URGENT, RoutingRule.SKILL} and any(
                    agent.team == skill_team.id for agent in candidates):
                return step.rule, skill_team
            return step.rule, roster.team(candidates[0].team)
        return steps[0].rule, skill_team

    # ------------------------------------------------------------------- queue upkeep

    def _drain(self) -> list[RoutingResult]:
        """Place queued conversations with free agents, in queue order."""
        results: list[RoutingResult] = []
        for entry in sorted(self._queue.values(), key=_QueueEntry.priority):
            steps = self._steps(entry.request, entry.overflow_teams)
            choice = self._choose(steps)
            if choice is None:
                continue
            del self._queue[entry.request.conversation_id]
            results.append(self._assign(entry.request, entry.sequence, steps, choice,
                                        entry.overflow_teams))
        return results

    def _overflow(self, entry: _QueueEntry, now: float) -> bool:
        """Move a queued conversation to its team's overflow team; return whether it moved."""
        source = self._roster.team(entry.team_id)
        if source.overflow_team is None:
            entry.overflow_at = None
            return False
        target = self._roster.team(source.overflow_team)
        entry.moves.append({"from_team": source.id, "to_team": target.id, "at": now})
        entry.team_id = target.id
        entry.rule = RoutingRule.OVERFLOW
        entry.enqueued_at = now
        entry.overflow_at = _overflow_time(target, now)
        if target.id not in entry.overflow_teams:
            entry.overflow_teams = (*entry.overflow_teams, target.id)
        logger.info("conversation %s overflowed from team %s to team %s",
                    entry.request.conversation_id, source.id, target.id)
        return True

    def _queued_result(self, entry: _QueueEntry) -> RoutingResult:
        team = self._roster.team(entry.team_id)
        position = self._queue_position(entry)
        wait = self._estimated_wait(team, position)
        return RoutingResult(
            conversation_id=entry.request.conversation_id,
            status="queued",
            rule=entry.rule,
            fallback_from=None,
            team_id=team.id,
            agent_id=None,
            agent_name=None,
            level=entry.request.min_level,
            queue_position=position,
            estimated_wait_seconds=wait,
            overflow_team=team.overflow_team if entry.overflow_at is not None else None,
            overflow_at=entry.overflow_at,
            explanation=self._queued_explanation(entry, team, position, wait),
        )

    def _queue_position(self, entry: _QueueEntry) -> int:
        ahead = [other for other in self._queue.values()
                 if other.team_id == entry.team_id and other.priority() < entry.priority()]
        return len(ahead) + 1

    def _estimated_wait(self, team: Team, position: int) -> float:
        capacity = self._team_capacity(team.id)
        rounds = math.ceil(position / max(1, capacity))
        return rounds * self._mean_handle_seconds(team.id)

    def _team_capacity(self, team_id: str) -> int:
        # Busy agents come back to the queue soon; away agents do not, so they do not count.
        return sum(slot.agent.capacity for slot in self._slots.values()
                   if slot.agent.team == team_id and slot.status is not AgentStatus.AWAY)

    def _mean_handle_seconds(self, team_id: str) -> float:
        times = self._handle_times.get(team_id)
        if not times:
            return self.default_handle_seconds
        return sum(times) / len(times)

    def _record_handle_time(self, team_id: str, seconds: float) -> None:
        times = self._handle_times.setdefault(team_id, deque(maxlen=self.handle_time_window))
        times.append(seconds)

    def _queued_explanation(
        self, entry: _QueueEntry, team: Team, position: int, wait: float
    ) -> str:
        request = entry.request
        if entry.moves:
            why = f"it waited too long on team {entry.moves[-1]['from_team']} and overflowed"
        elif any(step.candidates for step in self._steps(request, entry.overflow_teams)):
            why = "every qualified agent is busy, away or at capacity"
        else:
            skill = self._roster.skill_for(request.topic)
            why = f"no agent in the roster covers {skill.value} at {request.min_level} or above"
        return (f"Queued at position {position} on team {team.id} because {why}; estimated "
                f"wait {wait:.0f} s.")

    # ------------------------------------------------------------------ bookkeeping

    def _take_sequence(self) -> int:
        self._next_sequence += 1
        return self._next_sequence

    def _current_result(self, conversation_id: str) -> RoutingResult | None:
        assignment = self._assignments.get(conversation_id)
        if assignment is not None:
            return assignment.result
        entry = self._queue.get(conversation_id)
        return self._queued_result(entry) if entry is not None else None

    def _locate(self, conversation_id: str) -> tuple[RoutingRequest, int, Level]:
        assignment = self._assignments.get(conversation_id)
        if assignment is not None:
            agent_level = self._slots[assignment.agent_id].agent.level
            return assignment.request, assignment.sequence, max(agent_level,
                                                                assignment.request.min_level)
        entry = self._queue.get(conversation_id)
        if entry is not None:
            return entry.request, entry.sequence, entry.request.min_level
        raise RoutingLookupError(self._unknown_conversation(conversation_id))

    def _remove(self, conversation_id: str) -> None:
        assignment = self._assignments.pop(conversation_id, None)
        if assignment is not None:
            self._slots[assignment.agent_id].conversations.remove(conversation_id)
        self._queue.pop(conversation_id, None)

    def _unknown_conversation(self, conversation_id: str) -> str:
        return (f"conversation {conversation_id!r} is neither assigned nor queued; route it "
                "first, or it was already released")

    def _adopt_roster(self, roster: Roster) -> list[tuple[RoutingRequest, int]]:
        """Switch state to `roster`; return the conversations that must be routed again."""
        slots = _slots_from(roster)
        orphans: list[tuple[RoutingRequest, int]] = []

        for conversation_id, assignment in list(self._assignments.items()):
            slot = slots.get(assignment.agent_id)
            if slot is None:
                del self._assignments[conversation_id]
                orphans.append((assignment.request, assignment.sequence))
                continue
            slot.conversations.append(conversation_id)
            if slot.load > slot.agent.capacity:
                logger.warning("agent %s keeps %d conversations above the new capacity %d",
                               slot.agent.id, slot.load, slot.agent.capacity)

        for conversation_id, entry in list(self._queue.items()):
            if not roster.has_team(entry.team_id):
                del self._queue[conversation_id]
                orphans.append((entry.request, entry.sequence))
                continue
            entry.overflow_teams = tuple(team_id for team_id in entry.overflow_teams
                                         if roster.has_team(team_id))
            entry.overflow_at = _overflow_time(roster.team(entry.team_id), entry.enqueued_at)

        self._roster = roster
        self._slots = slots
        self._handle_times = {team_id: times for team_id, times in self._handle_times.items()
                              if roster.has_team(team_id)}
        orphans.sort(key=lambda orphan: (0 if orphan[0].is_urgent else 1,
                                         -orphan[0].tier.severity, orphan[1]))
        return orphans

    def _agent_snapshot(self, slot: _AgentSlot) -> dict[str, Any]:
        agent = slot.agent
        return {
            "id": agent.id,
            "name": agent.name,
            "team": agent.team,
            "level": str(agent.level),
            "skills": [skill.value for skill in agent.skills],
            "status": slot.status.value,
            "capacity": agent.capacity,
            "load": slot.load,
            "conversations": list(slot.conversations),
        }

    def _team_snapshot(self, team: Team) -> dict[str, Any]:
        entries = sorted((entry for entry in self._queue.values() if entry.team_id == team.id),
                         key=_QueueEntry.priority)
        return {
            "id": team.id,
            "name": team.name,
            "skills": [skill.value for skill in team.skills],
            "capacity": self._team_capacity(team.id),
            "mean_handle_seconds": self._mean_handle_seconds(team.id),
            "overflow_team": team.overflow_team,
            "overflow_after_seconds": team.overflow_after_seconds,
            "queue": [self._entry_snapshot(entry, team, position)
                      for position, entry in enumerate(entries, start=1)],
        }

    def _entry_snapshot(self, entry: _QueueEntry, team: Team, position: int) -> dict[str, Any]:
        request = entry.request
        return {
            "conversation_id": request.conversation_id,
            "position": position,
            "reason": request.reason.value,
            "urgent": request.is_urgent,
            "tier": request.tier.value,
            "min_level": str(request.min_level),
            "rule": entry.rule.value,
            "enqueued_at": entry.enqueued_at,
            "overflow_at": entry.overflow_at,
            "estimated_wait_seconds": self._estimated_wait(team, position),
            "moves": [dict(move) for move in entry.moves],
        }


def _slots_from(roster: Roster) -> dict[str, _AgentSlot]:
    return {agent.id: _AgentSlot(agent, agent.status, agent.load) for agent in roster.agents}


def _overflow_time(team: Team, since: float) -> float | None:
    if team.overflow_after_seconds is None:
        return None
    return since + team.overflow_after_seconds


# ------------------------------------------------------------------------- explanations


def _assigned_explanation(
    request: RoutingRequest, roster: Roster, steps: Sequence[_Step], choice: _Choice
) -> str:
    agent = choice.agent
    who = f"Assigned to {agent.name} ({agent.level}, team {agent.team})"
    why = _rule_phrase(request, roster, choice)
    first = steps[0]
    if first.rule is choice.step.rule:
        return f"{who} {why}."
    return f"{who} {why}, because {_missing_phrase(request, roster, first)}."


def _rule_phrase(request: RoutingRequest, roster: Roster, choice: _Choice) -> str:
    customer = _customer_label(request.customer)
    skill = roster.skill_for(request.topic).value
    rule = choice.step.rule
    if rule is RoutingRule.VIP and choice.group_index == 0:
        return f"as the account manager of VIP {customer}"
    if rule is RoutingRule.VIP:
        own_exists = bool(choice.step.groups[0])
        suffix = " whose own account manager is not free" if own_exists else ""
        return f"as a free account manager for VIP {customer}{suffix}"
    if rule is RoutingRule.ENTERPRISE:
        return f"as a senior technical specialist for enterprise {customer}"
    if rule is RoutingRule.URGENT and request.billing_dispute and choice.group_index == 0:
        return "as a free agent who can approve refunds for an urgent billing dispute"
    if rule is RoutingRule.URGENT:
        return f"as the least-loaded free agent covering {skill} for an urgent conversation"
    if rule is RoutingRule.BILLING_DISPUTE:
        return "as a billing specialist who can approve refunds for a billing dispute"
    if rule is RoutingRule.OVERFLOW:
        return "after the conversation overflowed to the agent's team"
    return f"as the least-loaded free agent covering {skill} at {request.min_level} or above"


def _missing_phrase(request: RoutingRequest, roster: Roster, step: _Step) -> str:
    state = "free" if step.candidates else "in the roster"
    if step.rule is RoutingRule.VIP:
        return f"no account manager at {request.min_level} or above was {state}"
    if step.rule is RoutingRule.ENTERPRISE:
        return f"no senior technical specialist at {request.min_level} or above was {state}"
    if step.rule is RoutingRule.BILLING_DISPUTE:
        return f"no billing specialist who can approve refunds was {state}"
    skill = roster.skill_for(request.topic).value
    return f"no agent covering {skill} at {request.min_level} or above was {state}"


def _customer_label(customer: CustomerProfile | None) -> str:
    if customer is None or customer.customer_id is None:
        return "customer"
    return f"customer {customer.customer_id}"

