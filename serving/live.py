"""Incremental scoring: apply one new turn to a conversation's state and decide.

The cost of a turn does not grow with the conversation: only the new customer message is
encoded, and the features and rules continue from counters kept in the state. The result is
the same as scoring the whole conversation with `Scorer.score`, which a test checks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

import numpy as np

from serving.decision import Decision, decide
from serving.features import ConversationFeatures
from serving.rules import RuleMatch, RuleState, match_turn
from serving.schema import Conversation, CustomerProfile, Role, Turn
from serving.scorer import ESCALATION_CLASS, Scorer
from serving.state import LiveState

logger = logging.getLogger(__name__)

MODEL_SIGNAL = "escalation_probability"
# After a handback the model escalates again only when its probability rises this much above
# the value it had at the handoff. The concern a human already handled must not bounce the
# customer back.
HANDBACK_PROBABILITY_MARGIN = 0.10


class _LatestTurnWindow(Sequence[Turn]):
    """A turn list of the conversation's full length that holds only the newest turn.

    Rules and features read only the turn they are given plus their stored counters, so
    they need `len()` and the last item, never the older turns.
    """

    def __init__(self, length: int, latest: Turn) -> None:
        self._length = length
        self._latest = latest

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Turn: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Turn]: ...

    def __getitem__(self, index: int | slice) -> Turn | Sequence[Turn]:
        if isinstance(index, slice):
            raise TypeError("the live turn window does not support slices")
        position = index + self._length if index < 0 else index
        if position != self._length - 1:
            raise IndexError(f"turn {index} is not kept in the live window; only the newest "
                             f"turn ({self._length - 1}) is")
        return self._latest


@dataclass(frozen=True)
class TurnResult:
    """Result of applying one turn: the scores, the new rule matches and the decision."""

    turn_index: int
    role: Role
    escalation_probability: float
    sentiment: dict[str, float] | None
    frustration: float | None
    new_matches: tuple[RuleMatch, ...]
    decision: Decision
    newly_escalated: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable plain types."""
        return {
            "turn_index": self.turn_index,
            "role": self.role.value,
            "escalation_probability": round(self.escalation_probability, 6),
            "sentiment": ({name: round(value, 6) for name, value in self.sentiment.items()}
                          if self.sentiment is not None else None),
            "frustration": round(self.frustration, 6) if self.frustration is not None else None,
            "rule_matches": [match.to_dict() for match in self.new_matches],
            "decision": self.decision.to_dict(),
            "newly_escalated": self.newly_escalated,
        }


def new_state(
    conversation_id: str,
    *,
    channel: str | None = None,
    started_at: datetime | None = None,
    customer: CustomerProfile | None = None,
) -> LiveState:
    """Return the state of a conversation that has no turns yet."""
    return LiveState(
        conversation_id=conversation_id,
        channel=channel,
        started_at=started_at.isoformat() if started_at else None,
        customer=customer.model_dump(mode="json") if customer else None,
    )


def apply_turn(scorer: Scorer, state: LiveState, turn: Turn) -> TurnResult:
    """Score `turn` as the next turn of the conversation in `state`, updating `state` in place."""
    turn_index = state.turn_count
    conversation = _window_conversation(state, turn)
    rule_state = RuleState.from_dict(state.rule_state) if state.rule_state else RuleState()
    matches = match_turn(conversation, turn_index, rule_state, scorer.policy)

    features = ConversationFeatures(state.feature_state)
    features.observe_matches(matches)
    sentiment: dict[str, float] | None = None
    frustration: float | None = None
    if turn.role is Role.CUSTOMER:
        (signal,) = scorer.message_signals([turn.text])
        vector = features.customer_turn_vector(turn_index, conversation, signal)
        probability = float(scorer.heads["escalation"].predict_proba(
            vector.reshape(1, -1))[0, ESCALATION_CLASS])
        sentiment = _sentiment_dict(signal.sentiment)
        frustration = float(signal.frustration)
        state.last_probability = probability
        state.history.append({"turn_index": turn_index, "escalation_probability": probability,
                              "sentiment": sentiment, "frustration": frustration})
    else:
        features.observe_turn(turn, conversation)
        _note_role_change(state, turn)

    state.rule_state = rule_state.to_dict()
    state.matches.extend(match.to_dict() for match in matches)
    state.turn_count += 1
    state.bundle = scorer.manifest.name

    decision = _decide(scorer, state, turn_index)
    newly_escalated = decision.escalate and state.status in {"active", "handed_back"}
    if newly_escalated:
        state.status = "escalated"
        state.escalations += 1
        state.agent_joined = False
    state.last_decision = decision.to_dict()
    return TurnResult(turn_index, turn.role, state.last_probability, sentiment, frustration,
                      tuple(matches), decision, newly_escalated)


def hand_back(state: LiveState) -> None:
    """Record that a human handed the conversation back to the assistant.

    The rule signals that fired so far, and the model's current probability, no longer
    escalate it. A new rule signal or a clearly higher probability still does.
    """
    if state.status != "escalated":
        return
    fired = {match["rule"] for match in state.matches}
    state.suppressed_rules = sorted(set(state.suppressed_rules) | fired)
    state.suppressed_probability = state.last_probability
    state.status = "handed_back"
    logger.info("conversation %s handed back; %d rule signal(s) suppressed",
                state.conversation_id, len(state.suppressed_rules))


def _decide(scorer: Scorer, state: LiveState, turn_index: int) -> Decision:
    matches = [RuleMatch.from_dict(match) for match in state.matches
               if match["rule"] not in state.suppressed_rules]
    thresholds = scorer.thresholds
    probability = state.last_probability
    if state.suppressed_probability is not None and \
            probability < state.suppressed_probability + HANDBACK_PROBABILITY_MARGIN:
        # Report the real probability, but keep the model from re-escalating on it.
        decision = decide(0.0, turn_index, matches, thresholds)
        return Decision(decision.tier, decision.escalate,
                        decision.prepare_agent or probability >= thresholds.prepare,
                        probability, thresholds, decision.reasons, decision.reason_category)
    return decide(probability, turn_index, matches, thresholds)


def _note_role_change(state: LiveState, turn: Turn) -> None:
    # An agent message while escalated means a human took over; an assistant message after
    # that means the human handed the conversation back.
    if turn.role is Role.AGENT and state.status == "escalated":
        state.agent_joined = True
    elif turn.role is Role.ASSISTANT and state.status == "escalated" and state.agent_joined:
        hand_back(state)


def _window_conversation(state: LiveState, turn: Turn) -> Conversation:
    customer = CustomerProfile.model_validate(state.customer) if state.customer else None
    started_at = datetime.fromisoformat(state.started_at) if state.started_at else None
    # model_construct skips validation: the new turn was validated on arrival and the window
    # is not a list.
    return Conversation.model_construct(
        id=state.conversation_id, channel=state.channel, started_at=started_at,
        customer=customer, turns=_LatestTurnWindow(state.turn_count + 1, turn), labels=None,
        source=None,
    )


def _sentiment_dict(values: np.ndarray) -> dict[str, float]:
    from serving.schema import SENTIMENT_CLASSES

    return {label.value: float(value) for label, value in
            zip(SENTIMENT_CLASSES, np.asarray(values).reshape(-1), strict=True)}
