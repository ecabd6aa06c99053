"""Per-row scores of a bundle and its baselines on labelled data, collected in one scoring pass."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.evaluate.evaluation import _has_ratings, _rule_baseline_scores
from pipelines.evaluate.vader import VaderBaseline
from pipelines.train.labels import SENTIMENT_INDEX, dissatisfied_flags, escalation_labels
from serving.features import MessageSignals
from serving.schema import SENTIMENT_CLASSES, Conversation, Role, Sentiment, Turn
from serving.scorer import ConversationScore, Scorer

logger = logging.getLogger(__name__)

# Group name of conversations whose `source` is not set.
NO_SOURCE = "(no source)"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MessageRows:
    """Labelled customer messages with the heads' and VADER's outputs, one row per message.

    `frustration` is None unless every message carries a frustration label, as in
    `evaluate_messages`, so both commands score frustration on the same rows.
    """

    sources: list[str]
    sentiment: np.ndarray
    """Shape [n], index into SENTIMENT_CLASSES of the labelled sentiment."""
    frustration: np.ndarray | None
    """Shape [n], 1 for a frustrated message."""
    model_sentiment: np.ndarray
    """Shape [n, 3], the sentiment head's probabilities in SENTIMENT_CLASSES order."""
    vader_sentiment: np.ndarray
    model_frustration: np.ndarray
    """Shape [n], the frustration head's probability."""
    vader_frustration: np.ndarray


@dataclass(frozen=True)
class ConversationRows:
    """One conversation with satisfaction ratings: labels, scores and decisions per customer turn.

    Every array has one entry per customer turn, in order.
    """

    conversation_id: str
    source: str
    labelled_reason: str | None
    """`labels.escalation_reason` of the conversation, when the data gives one."""
    labels: np.ndarray
    """Escalation label: 1 when this turn or one of the next `horizon` is dissatisfied."""
    dissatisfied: np.ndarray
    """True where the turn's rating is at or below the dissatisfied rating."""
    model: np.ndarray
    """Escalation probability of the bundle's head."""
    rules: np.ndarray
    """Rule baseline score: the most urgent rule tier fired so far, scaled to [0, 1]."""
    escalate: np.ndarray
    """True where the served decision (model and rules together) escalates."""
    reason_categories: list[str | None]
    """Reason category of the served decision at each turn, None where it does not escalate."""


@dataclass(frozen=True)
class ReportRows:
    """Everything the report computes its numbers from."""

    messages: MessageRows | None
    conversations: list[ConversationRows]
    horizon: int
    dissatisfied_rating: int


@dataclass(frozen=True)
class _SentimentLabels:
    sentiment: Sentiment
    frustration: bool | None


def has_labels(conversations: Sequence[Conversation]) -> bool:
    """Return whether any customer turn carries a sentiment label or a satisfaction rating."""
    for conversation in conversations:
        for turn in conversation.turns:
            labels = turn.labels
            if turn.role is not Role.CUSTOMER or labels is None:
                continue
            if labels.sentiment is not None or labels.satisfaction is not None:
                return True
    return False


def collect_rows(
    conversations: Sequence[Conversation],
    scorer: Scorer,
    vader: VaderBaseline,
    *,
    horizon: int,
    dissatisfied_rating: int,
    progress: Progress | None = None,
) -> ReportRows:
    """Score labelled conversations once and keep every per-turn and per-message output.

    Conversations with satisfaction ratings go through `Scorer.score`, as in
    `evaluate_escalation`. Their labelled messages reuse the turn scores so that no text is
    encoded twice, and the labelled messages of other conversations are encoded in one batch.
    """
    rated: list[ConversationRows] = []
    texts: list[str] = []
    sources: list[str] = []
    sentiment: list[int] = []
    frustration: list[bool | None] = []
    signals: list[MessageSignals | None] = []
    for position, conversation in enumerate(conversations, start=1):
        score = scorer.score(conversation) if _has_ratings(conversation) else None
        if score is not None:
            rated.append(_conversation_rows(conversation, score, horizon, dissatisfied_rating))

        for turn, labels, signal in _labelled_turns(conversation, score):
            texts.append(turn.text)
            sources.append(conversation.source or NO_SOURCE)
            sentiment.append(SENTIMENT_INDEX[labels.sentiment])
            frustration.append(labels.frustration)
            signals.append(signal)
        if progress is not None:
            progress("score", position, len(conversations))

    messages = _message_rows(scorer, vader, texts, sources, sentiment, frustration, signals,
                             progress) if texts else None
    logger.info("report rows: %d labelled messages, %d rated conversations",
                len(texts), len(rated))
    return ReportRows(messages, rated, horizon, dissatisfied_rating)


def _labelled_turns(
    conversation: Conversation, score: ConversationScore | None
) -> list[tuple[Turn, _SentimentLabels, MessageSignals | None]]:
    turn_scores = {turn.turn_index: turn for turn in score.turns} if score is not None else {}
    found: list[tuple[Turn, _SentimentLabels, MessageSignals | None]] = []
    for index in conversation.customer_turn_indices():
        turn = conversation.turns[index]
        if turn.labels is None or turn.labels.sentiment is None:
            continue
        labels = _SentimentLabels(turn.labels.sentiment, turn.labels.frustration)
        turn_score = turn_scores.get(index)
        signal = None
        if turn_score is not None:
            probabilities = np.asarray([turn_score.sentiment[label.value]
                                        for label in SENTIMENT_CLASSES])
            signal = MessageSignals(embedding=np.zeros(0, dtype=np.float32),
                                    sentiment=probabilities,
                                    frustration=turn_score.frustration)
        found.append((turn, labels, signal))
    return found


def _message_rows(
    scorer: Scorer,
    vader: VaderBaseline,
    texts: list[str],
    sources: list[str],
    sentiment: list[int],
    frustration: list[bool | None],
    signals: list[MessageSignals | None],
    progress: Progress | None,
) -> MessageRows:
    missing = [position for position, signal in enumerate(signals) if signal is None]
    if progress is not None:
        progress("encode", 0, len(missing))
    encoded = scorer.message_signals([texts[position] for position in missing])
    for position, signal in zip(missing, encoded, strict=True):
        signals[position] = signal
    if progress is not None:
        progress("encode", len(missing), len(missing))

    complete = [signal for signal in signals if signal is not None]
    frustration_labels = None
    if all(label is not None for label in frustration):
        frustration_labels = np.asarray([int(bool(label)) for label in frustration])
    return MessageRows(
        sources=sources,
        sentiment=np.asarray(sentiment),
        frustration=frustration_labels,
        model_sentiment=np.vstack([signal.sentiment for signal in complete]).astype(float),
        vader_sentiment=vader.sentiment_proba(texts),
        model_frustration=np.asarray([signal.frustration for signal in complete], dtype=float),
        vader_frustration=vader.frustration_score(texts),
    )


def _conversation_rows(
    conversation: Conversation, score: ConversationScore, horizon: int, dissatisfied_rating: int
) -> ConversationRows:
    labels = conversation.labels
    categories = [turn.decision.reason_category for turn in score.turns]
    return ConversationRows(
        conversation_id=conversation.id,
        source=conversation.source or NO_SOURCE,
        labelled_reason=labels.escalation_reason if labels is not None else None,
        labels=np.asarray(escalation_labels(conversation, horizon=horizon,
                                            dissatisfied_rating=dissatisfied_rating)),
        dissatisfied=np.asarray(dissatisfied_flags(conversation, dissatisfied_rating), dtype=bool),
        model=np.asarray([turn.escalation_probability for turn in score.turns], dtype=float),
        rules=np.asarray(_rule_baseline_scores(score), dtype=float),
        escalate=np.asarray([turn.decision.escalate for turn in score.turns], dtype=bool),
        reason_categories=[category.value if category is not None else None
                           for category in categories],
    )
