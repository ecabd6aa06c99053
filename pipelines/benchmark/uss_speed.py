"""Scoring speed of the USS benchmark's model on the product's path, without the embedding cache."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pipelines.benchmark.uss_data import ProductComponents
from serving.features import conversation_feature_matrix
from serving.heads import Head
from serving.rules import match_conversation
from serving.schema import Conversation
from serving.signals import message_signals


def scoring_speed(
    conversations: Sequence[Conversation], components: ProductComponents, heads: Sequence[Head]
) -> dict[str, float]:
    """Score every customer turn of `conversations` from raw text and time it.

    Each conversation goes through the encoder (never the cache), the sentiment and frustration
    heads, the rule policy, the feature code and `heads`, as a batch job would score it.
    Returns `messages` (customer turns scored), `seconds` and `messages_per_second`.
    """
    messages = 0
    started = time.perf_counter()
    for conversation in conversations:
        indices = conversation.customer_turn_indices()
        if not indices:
            continue
        embeddings = components.encoder.encode([conversation.turns[i].text for i in indices])
        signals = message_signals(embeddings, components.sentiment, components.frustration)
        matches = match_conversation(conversation, components.policy)
        features = conversation_feature_matrix(conversation, signals, matches)
        for head in heads:
            head.predict_proba(features)
        messages += len(indices)
    seconds = time.perf_counter() - started

    rate = messages / seconds if seconds > 0 else 0.0
    return {"messages": float(messages), "seconds": seconds, "messages_per_second": rate}
