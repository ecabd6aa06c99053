"""Turn-by-turn replay of past conversations through the serving runtime.

Each conversation goes through `serving.live.apply_turn` one turn at a time, as the service
scores a live chat, and every escalation is classified (`serving.reasons`) and routed
(`serving.routing`) as `serving.service.EscalationService` does. Backtests and threshold tuning
both start from the records written here, and notebooks can import them too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.backtest.scoring import CachingScorer
from serving.decision import DecisionThresholds
from serving.live import TurnResult, apply_turn, new_state
from serving.reasons import ReasonClassifier, load_reason_config
from serving.roster import Roster
from serving.routing import Router, RoutingRequest
from serving.rules import RuleMatch
from serving.schema import Conversation
from serving.state import LiveState
from serving.tiers import Tier, most_urgent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnRecord:
    """Decision of the runtime after one turn.

    `probability` is the conversation's latest escalation probability, so a non-customer turn
    repeats the one of the customer turn before it. `rule_tier` is the most urgent tier of all
    rule matches so far, ignoring hand-backs. With `probability` it is enough to re-decide the
    first escalation at any other threshold without scoring again.
    """

    turn_index: int
    role: str
    probability: float
    tier: Tier
    escalate: bool
    prepare_agent: bool
    newly_escalated: bool
    rule_tier: Tier
    timestamp: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-serialisable plain types."""
        return {
            "turn_index": self.turn_index,
            "role": self.role,
            "probability": round(self.probability, 6),
            "tier": self.tier.value,
            "escalate": self.escalate,
            "prepare_agent": self.prepare_agent,
            "newly_escalated": self.newly_escalated,
            "rule_tier": self.rule_tier.value,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
        }


@dataclass(frozen=True)
class EscalationEvent:
    """One handoff of the replay: when, how urgent, why, and which team the router picked."""

    turn_index: int
    tier: Tier
    reason: str
    urgent: bool
    team_id: str
    routing_rule: str

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-serialisable plain types."""
        return {"turn_index": self.turn_index, "tier": self.tier.value, "reason": self.reason,
                "urgent": self.urgent, "team_id": self.team_id,
                "routing_rule": self.routing_rule}


@dataclass(frozen=True)
class ConversationReplay:
    """Every turn's decision and every handoff of one replayed conversation."""

    conversation_id: str
    turns: tuple[TurnRecord, ...]
    escalations: tuple[EscalationEvent, ...]

    @property
    def first_escalation(self) -> EscalationEvent | None:
        """The first handoff, or None when the conversation never escalated."""
        return self.escalations[0] if self.escalations else None

    def to_dict(self) -> dict[str, Any]:
        """Return the replay as JSON-serialisable plain types."""
        return {"conversation_id": self.conversation_id,
                "turns": [turn.to_dict() for turn in self.turns],
                "escalations": [event.to_dict() for event in self.escalations]}


@dataclass(frozen=True)
class ReplayRun:
    """The replays of one data set under one bundle and policy."""

    bundle: str
    policy: str
    thresholds: DecisionThresholds
    replays: tuple[ConversationReplay, ...]
    seconds: float


class TeamAssigner:
    """Classify the reason of an escalation and route it as the service does.

    Conversations of a backtest do not overlap in time, so each one is released right after it
    is routed. Every handoff is therefore routed against the roster's own loads and statuses,
    and its team is the one the routing rules pick, not the result of queueing behind others.
    """

    def __init__(self, scorer: CachingScorer, roster: Roster) -> None:
        self._reasons = ReasonClassifier.from_config(load_reason_config(),
                                                     scorer.encoder.encode)
        # A fixed clock: no queued conversation ever waits long enough to overflow.
        self._router = Router(roster, clock=lambda: 0.0)
        self._dimension = scorer.encoder.dimension

    def assign(self, conversation: Conversation, state: LiveState,
               result: TurnResult) -> EscalationEvent:
        """Return the handoff of `conversation` at the turn of `result`, routed to a team."""
        matches = [RuleMatch.from_dict(match) for match in state.matches]
        embeddings = np.asarray(state.feature_state.previous_embeddings, dtype=np.float32)
        if embeddings.size == 0:
            # An assistant turn can escalate before the customer wrote anything.
            embeddings = np.zeros((0, self._dimension), dtype=np.float32)
        assessment = self._reasons.classify(matches, embeddings)

        decision = result.decision
        routing = self._router.route(RoutingRequest(
            conversation_id=conversation.id,
            reason=assessment.reason,
            urgent=assessment.urgent,
            tier=decision.tier,
            customer=conversation.customer,
            billing_dispute=any(match.rule == "billing_dispute" for match in matches),
        ))
        self._router.release(conversation.id)
        return EscalationEvent(result.turn_index, decision.tier, assessment.reason.value,
                               assessment.urgent, routing.team_id, routing.rule.value)


def replay_conversation(scorer: CachingScorer, conversation: Conversation,
                        assigner: TeamAssigner) -> ConversationReplay:
    """Feed a conversation to `apply_turn` one turn at a time and record each decision."""
    state = new_state(conversation.id, channel=conversation.channel,
                      started_at=conversation.started_at, customer=conversation.customer)
    turns: list[TurnRecord] = []
    escalations: list[EscalationEvent] = []
    rule_tier = Tier.NONE
    for turn in conversation.turns:
        result = apply_turn(scorer, state, turn)
        rule_tier = most_urgent([rule_tier, *(match.tier for match in result.new_matches)])
        decision = result.decision
        turns.append(TurnRecord(
            turn_index=result.turn_index, role=turn.role.value,
            probability=result.escalation_probability, tier=decision.tier,
            escalate=decision.escalate, prepare_agent=decision.prepare_agent,
            newly_escalated=result.newly_escalated, rule_tier=rule_tier,
            timestamp=turn.timestamp,
        ))
        if result.newly_escalated:
            escalations.append(assigner.assign(conversation, state, result))
    return ConversationReplay(conversation.id, tuple(turns), tuple(escalations))


def replay_all(
    scorer: CachingScorer,
    conversations: Sequence[Conversation],
    roster: Roster,
    *,
    policy_name: str,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayRun:
    """Replay every conversation under the scorer's bundle and policy, in order."""
    started = time.perf_counter()
    logger.info("replay started: %d conversations, bundle %s, policy %s",
                len(conversations), scorer.manifest.name, policy_name)
    assigner = TeamAssigner(scorer, roster)
    replays = []
    for position, conversation in enumerate(conversations, start=1):
        replays.append(replay_conversation(scorer, conversation, assigner))
        if progress is not None:
            progress(position, len(conversations))

    seconds = time.perf_counter() - started
    logger.info("replay finished: %d conversations in %.1f s (%d texts encoded, %d reused)",
                len(replays), seconds, scorer.encoded_texts, scorer.reused_texts)
    return ReplayRun(scorer.manifest.name, policy_name, scorer.thresholds, tuple(replays),
                     seconds)


def policy_label(path: Path | None) -> str:
    """Return how reports name a policy: its path, or `default` for the packaged one."""
    return str(path) if path is not None else "default"
