"""Training tables: message embeddings with labels, and escalation features per customer turn."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.train.labels import SENTIMENT_INDEX, escalation_labels
from serving.features import FEATURE_NAMES, conversation_feature_matrix
from serving.heads import Head
from serving.rules import Policy, match_conversation
from serving.schema import Conversation, Role
from serving.signals import message_signals

EmbedFunction = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class MessageTable:
    """Single-message examples with their embeddings and labels."""

    texts: list[str]
    embeddings: np.ndarray
    sentiment: np.ndarray
    frustration: np.ndarray


@dataclass(frozen=True)
class EscalationTable:
    """One row per customer turn: features, label, and which conversation it came from."""

    features: np.ndarray
    labels: np.ndarray
    conversation_ids: list[str]
    turn_indices: list[int]


def message_table(conversations: Sequence[Conversation], embed: EmbedFunction) -> MessageTable:
    """Collect the labelled customer messages of single-turn corpora such as GoEmotions."""
    texts: list[str] = []
    sentiment: list[int] = []
    frustration: list[int] = []
    for conversation in conversations:
        for turn in conversation.turns:
            labels = turn.labels
            if turn.role is not Role.CUSTOMER or labels is None or labels.sentiment is None:
                continue
            texts.append(turn.text)
            sentiment.append(SENTIMENT_INDEX[labels.sentiment])
            frustration.append(int(bool(labels.frustration)))

    if not texts:
        raise ValueError("no customer message carries a sentiment label; message heads are "
                         "trained on GoEmotions-style data with labels.sentiment set")
    return MessageTable(
        texts=texts,
        embeddings=embed(texts),
        sentiment=np.asarray(sentiment, dtype=np.int64),
        frustration=np.asarray(frustration, dtype=np.int64),
    )


def escalation_table(
    conversations: Sequence[Conversation],
    embed: EmbedFunction,
    sentiment_head: Head,
    frustration_head: Head,
    policy: Policy,
    *,
    horizon: int,
    dissatisfied_rating: int,
) -> EscalationTable:
    """Compute the escalation features of every customer turn, exactly as the scorer does.

    The embeddings of all customer messages are computed in one call (cached on disk by the
    caller), then each conversation goes through `serving.features`, the code the scorer runs.
    """
    texts = [
        turn.text
        for conversation in conversations
        for turn in conversation.turns
        if turn.role is Role.CUSTOMER
    ]
    embeddings = embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
    signals = message_signals(embeddings, sentiment_head, frustration_head)

    rows: list[np.ndarray] = []
    labels: list[int] = []
    conversation_ids: list[str] = []
    turn_indices: list[int] = []
    position = 0
    for conversation in conversations:
        customer_indices = conversation.customer_turn_indices()
        own_signals = signals[position:position + len(customer_indices)]
        position += len(customer_indices)
        matches = match_conversation(conversation, policy)
        rows.append(conversation_feature_matrix(conversation, own_signals, matches))
        labels.extend(escalation_labels(conversation, horizon=horizon,
                                        dissatisfied_rating=dissatisfied_rating))
        conversation_ids.extend([conversation.id] * len(customer_indices))
        turn_indices.extend(customer_indices)

    features = np.vstack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return EscalationTable(features, np.asarray(labels, dtype=np.int64), conversation_ids,
                           turn_indices)
