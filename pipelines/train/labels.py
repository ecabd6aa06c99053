"""Training labels derived from the annotated corpora."""

from __future__ import annotations

from serving.schema import Conversation, Role, Sentiment

SENTIMENT_INDEX = {Sentiment.NEGATIVE: 0, Sentiment.NEUTRAL: 1, Sentiment.POSITIVE: 2}


def customer_ratings(conversation: Conversation) -> list[int | None]:
    """Return the satisfaction rating of each customer turn, in order (None when unrated)."""
    return [
        turn.labels.satisfaction if turn.labels is not None else None
        for turn in conversation.turns
        if turn.role is Role.CUSTOMER
    ]


def dissatisfied_flags(conversation: Conversation, dissatisfied_rating: int) -> list[bool]:
    """Return, per customer turn, whether its rating is at or below `dissatisfied_rating`."""
    return [rating is not None and rating <= dissatisfied_rating
            for rating in customer_ratings(conversation)]


def escalation_labels(
    conversation: Conversation, *, horizon: int, dissatisfied_rating: int
) -> list[int]:
    """Label each customer turn 1 when it or one of the next `horizon` is dissatisfied.

    Looking ahead makes the model warn before the customer's dissatisfaction shows, which is
    when a handoff still helps.
    """
    flags = dissatisfied_flags(conversation, dissatisfied_rating)
    return [int(any(flags[index:index + horizon + 1])) for index in range(len(flags))]
