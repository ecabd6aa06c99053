"""Build the similar-case index of resolved past conversations for a model bundle."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from serving.schema import Conversation, Role
from serving.similar import CaseRecord, customer_texts, mean_direction, write_similar_cases
from serving.tiers import Reason

logger = logging.getLogger(__name__)

# Satisfaction 3 is "normal" on the 1-5 scale of the USS corpora: the customer did not end
# the conversation dissatisfied.
MIN_RESOLVED_SATISFACTION = 3
SUMMARY_CHARS = 200
RESOLUTION_CHARS = 300
DEFAULT_MAX_CASES = 2_000


def build_similar_case_index(
    conversations: Sequence[Conversation],
    embed: Callable[[list[str]], np.ndarray],
    output_dir: Path,
    *,
    max_cases: int = DEFAULT_MAX_CASES,
) -> tuple[Path, Path]:
    """Write `similar_cases.npy` and `similar_cases.json` to `output_dir`; return both paths.

    Choices, in order:
    - A conversation is resolved when `labels.overall_satisfaction` >= 3. Conversations
      without that label, without non-empty customer text or without an assistant message
      are skipped.
    - The first `max_cases` resolved conversations in input order are kept.
    - A case's vector is the re-normalised mean of the embeddings of its non-empty customer
      turns (`serving.similar.conversation_vector` computes the same when serving).
    - summary: the first customer message, and resolution: the last assistant message, each
      cut at a word boundary to about 200 and 300 characters with "..." appended.
    - reason: `labels.escalation_reason` when it names a Reason, otherwise null.

    `embed` receives all customer texts of the kept cases in one call and must return one
    row per text. Raises ValueError when no conversation qualifies.
    """
    if max_cases < 1:
        raise ValueError(f"max_cases is {max_cases}; use 1 or more")

    selected = [conversation for conversation in conversations
                if is_resolved_case(conversation)][:max_cases]
    if not selected:
        raise ValueError(f"none of the {len(conversations)} conversations is a resolved case "
                         f"(labels.overall_satisfaction >= {MIN_RESOLVED_SATISFACTION}, customer "
                         "text and an assistant message); pass labelled conversations")

    texts_per_case = [customer_texts(conversation) for conversation in selected]
    embeddings = _embed_all(embed, [text for texts in texts_per_case for text in texts])
    vectors, cases = _case_rows(selected, texts_per_case, embeddings)

    paths = write_similar_cases(Path(output_dir), vectors, cases)
    logger.info("similar-case index: %d cases of %d conversations, dimension %d, written to %s",
                len(cases), len(conversations), vectors.shape[1], output_dir)
    return paths


def is_resolved_case(conversation: Conversation) -> bool:
    """Return whether a conversation can be a similar case: rated 3 or higher overall, with
    customer text and an assistant message."""
    labels = conversation.labels
    if labels is None or labels.overall_satisfaction is None:
        return False
    if labels.overall_satisfaction < MIN_RESOLVED_SATISFACTION:
        return False
    has_answer = any(turn.role is Role.ASSISTANT and turn.text.strip()
                     for turn in conversation.turns)
    return has_answer and bool(customer_texts(conversation))


def _embed_all(embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    embeddings = np.asarray(embed(texts), dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise ValueError(f"embed returned an array of shape {embeddings.shape} for {len(texts)} "
                         "texts; it must return one row per text, shape [n, dimension]")
    return embeddings


def _case_rows(
    selected: list[Conversation], texts_per_case: list[list[str]], embeddings: np.ndarray
) -> tuple[np.ndarray, list[CaseRecord]]:
    vectors: list[np.ndarray] = []
    cases: list[CaseRecord] = []
    start = 0
    for conversation, texts in zip(selected, texts_per_case, strict=True):
        vector = mean_direction(embeddings[start : start + len(texts)])
        start += len(texts)
        # Embeddings that cancel out to zero leave no direction to search by.
        if vector is None:
            logger.warning("conversation %s skipped: its customer-turn embeddings average to "
                           "zero", conversation.id)
            continue
        vectors.append(vector)
        cases.append(_case_record(conversation, texts[0]))
    if not vectors:
        raise ValueError(f"the customer-turn embeddings of all {len(selected)} resolved "
                         "conversations average to zero; check the embed function")
    return np.stack(vectors).astype(np.float32), cases


def _case_record(conversation: Conversation, first_customer_text: str) -> CaseRecord:
    last_answer = next(turn.text for turn in reversed(conversation.turns)
                       if turn.role is Role.ASSISTANT and turn.text.strip())
    label = conversation.labels.escalation_reason if conversation.labels else None
    reason = Reason(label) if label in {item.value for item in Reason} else None
    return CaseRecord(
        id=conversation.id,
        reason=reason,
        summary=truncate_text(first_customer_text, SUMMARY_CHARS),
        resolution=truncate_text(last_answer, RESOLUTION_CHARS),
        source=conversation.source,
    )


def truncate_text(text: str, limit: int) -> str:
    """Collapse whitespace and cut `text` to at most `limit` characters at a word boundary.

    A cut text ends with "..." within the limit; a word longer than the limit is cut inside.
    """
    if limit < 4:
        raise ValueError(f"limit is {limit}; use 4 or more characters so '...' fits")
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head = flat[: limit - 3]
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    return cut.rstrip(" ,;:.") + "..."
