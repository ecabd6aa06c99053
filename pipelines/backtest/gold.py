"""Recorded outcomes of past conversations: whether and when each one needed a human.

Three label shapes are read, the first that a conversation carries wins:

1. `labels.escalated` / `labels.escalation_turn` on the conversation (support logs, MHCH);
2. per-turn `labels.handoff` (MHCH utterance labels) without conversation labels;
3. per-turn `labels.satisfaction` ratings (USS). A customer turn is positive when it or one of
   the next `horizon` customer turns is rated at or below `dissatisfied_rating`, the label the
   escalation head is trained on, and the conversation needed a human when any turn is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipelines.train.labels import dissatisfied_flags, escalation_labels
from serving.schema import Conversation, Role

GoldSource = Literal["conversation", "handoff", "satisfaction"]


@dataclass(frozen=True)
class GoldOutcome:
    """Ground truth of one conversation, as far as its labels tell it.

    `window` is the first and last turn index at which a handoff is on time. It is one turn
    for explicit labels. For ratings it runs from `horizon` customer turns before the first
    dissatisfied rating to that rating's turn. It is None when the labels mark a handoff as
    needed but not where. `positions` are the gold handoff turns used by GT-T, and
    `turn_labels` maps each labelled turn index to whether a handoff was due there.
    """

    escalated: bool
    source: GoldSource
    window: tuple[int, int] | None
    positions: tuple[int, ...]
    turn_labels: dict[int, bool]


def gold_outcome(
    conversation: Conversation, *, horizon: int, dissatisfied_rating: int
) -> GoldOutcome | None:
    """Return the recorded outcome of a conversation, or None when it carries no label.

    Raises ValueError when `labels.escalated` is false but `labels.escalation_turn` is set.
    """
    handoff_labels = {index: turn.labels.handoff for index, turn in enumerate(conversation.turns)
                      if turn.labels is not None and turn.labels.handoff is not None}
    labels = conversation.labels
    if labels is not None and (labels.escalated is not None or labels.escalation_turn is not None):
        return _from_conversation_labels(conversation, handoff_labels)
    if handoff_labels:
        positions = tuple(index for index, due in handoff_labels.items() if due)
        window = (positions[0], positions[0]) if positions else None
        return GoldOutcome(bool(positions), "handoff", window, positions, handoff_labels)
    if _has_ratings(conversation):
        return _from_ratings(conversation, horizon, dissatisfied_rating)
    return None


def _from_conversation_labels(
    conversation: Conversation, handoff_labels: dict[int, bool]
) -> GoldOutcome:
    assert conversation.labels is not None
    escalated = conversation.labels.escalated
    turn = conversation.labels.escalation_turn
    if escalated is False and turn is not None:
        raise ValueError(
            f"conversation {conversation.id!r}: labels.escalated is false but "
            f"labels.escalation_turn is {turn}; set escalated to true or remove the turn")

    handoff_positions = tuple(index for index, due in handoff_labels.items() if due)
    if turn is None and handoff_positions:
        turn = handoff_positions[0]
    positions = handoff_positions or ((turn,) if turn is not None else ())
    window = (turn, turn) if turn is not None else None
    return GoldOutcome(escalated is not False, "conversation", window, positions,
                       handoff_labels)


def _from_ratings(conversation: Conversation, horizon: int,
                  dissatisfied_rating: int) -> GoldOutcome:
    customer_turns = conversation.customer_turn_indices()
    due = escalation_labels(conversation, horizon=horizon,
                            dissatisfied_rating=dissatisfied_rating)
    flags = dissatisfied_flags(conversation, dissatisfied_rating)
    turn_labels = {index: bool(label) for index, label in zip(customer_turns, due, strict=True)}
    positions = tuple(index for index, label in turn_labels.items() if label)

    window = None
    if any(flags):
        first_dissatisfied = flags.index(True)
        earliest = max(0, first_dissatisfied - horizon)
        window = (customer_turns[earliest], customer_turns[first_dissatisfied])
    return GoldOutcome(any(flags), "satisfaction", window, positions, turn_labels)


def _has_ratings(conversation: Conversation) -> bool:
    return any(turn.role is Role.CUSTOMER and turn.labels is not None
               and turn.labels.satisfaction is not None for turn in conversation.turns)
