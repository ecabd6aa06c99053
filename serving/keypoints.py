"""Key points of a conversation: the customer's most central sentences by embedding similarity.

Every customer sentence is embedded, and each is scored by its cosine similarity to the
normalised mean of all of them. A sentence close to that centroid restates what most of the
customer's messages are about, so the top sentences summarise the problem, while greetings
and thanks score low. The selected sentences are returned in conversation order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from serving.extract import split_sentences
from serving.schema import Conversation

logger = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]

DEFAULT_KEY_POINTS = 3
# Sentences of fewer words ("Thanks!", "Hi there.") carry no content. They are used only when
# the customer wrote nothing longer.
MIN_WORDS = 3


class KeyPoint(BaseModel):
    """A customer sentence chosen as a key point; `span` is [start, end) in its turn's text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    turn_index: int
    text: str
    span: tuple[int, int]
    score: float


@dataclass(frozen=True)
class Sentence:
    """A customer sentence: its turn, its [start, end) span in that turn, and its text."""

    turn_index: int
    start: int
    end: int
    text: str


def customer_sentences(conversation: Conversation) -> list[Sentence]:
    """Return the customer's sentences in conversation order, each with its turn and span."""
    sentences: list[Sentence] = []
    for index in conversation.customer_turn_indices():
        text = conversation.turns[index].text
        for start, end in split_sentences(text):
            sentences.append(Sentence(index, start, end, text[start:end]))
    return sentences


def select_key_points(
    conversation: Conversation, embed: Embed, k: int = DEFAULT_KEY_POINTS
) -> list[KeyPoint]:
    """Return up to `k` customer sentences closest to the centroid, in conversation order.

    `embed` maps n texts to an [n, dimension] array; rows are L2-normalised here, so any
    sentence encoder works. Ties in score go to the earlier sentence.
    """
    if k < 1:
        raise ValueError(f"k is {k}; request 1 or more key points")

    sentences = _content_sentences(customer_sentences(conversation))
    if not sentences:
        return []

    vectors = _normalised_rows(_embed_checked(embed, [sentence.text for sentence in sentences]))
    scores = _centroid_scores(vectors)
    # A stable sort on the negated score keeps the earlier sentence first among equal scores.
    chosen = sorted(np.argsort(-scores, kind="stable")[:k].tolist())
    logger.debug("conversation %s: %d of %d customer sentences chosen as key points",
                 conversation.id, len(chosen), len(sentences))
    return [
        KeyPoint(turn_index=sentences[row].turn_index, text=sentences[row].text,
                 span=(sentences[row].start, sentences[row].end),
                 score=round(float(scores[row]), 6))
        for row in chosen
    ]


def _content_sentences(sentences: list[Sentence]) -> list[Sentence]:
    longer = [sentence for sentence in sentences if len(sentence.text.split()) >= MIN_WORDS]
    return longer or sentences


def _embed_checked(embed: Embed, texts: list[str]) -> np.ndarray:
    vectors = np.asarray(embed(texts), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise ValueError(f"embed returned an array of shape {vectors.shape} for {len(texts)} "
                         "texts; it must return one row per text, shape [n, dimension]")
    if not np.isfinite(vectors).all():
        raise ValueError("embed returned NaN or infinite values; check the encoder")
    return vectors


def _normalised_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # A zero row stays zero and so scores 0 instead of dividing by zero.
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _centroid_scores(vectors: np.ndarray) -> np.ndarray:
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    if norm == 0.0:
        return np.zeros(len(vectors))
    return vectors @ (centroid / norm)
