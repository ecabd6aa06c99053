"""Escalation features of a customer turn: its embedding plus the conversation context so far.

This module is the only implementation of these features. Training builds its matrix with
`ConversationFeatures` and the scorer feeds the same class turn by turn, so the two can never
compute different values for the same conversation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.schema import Conversation, Role, Turn
from serving.tiers import Tier

if TYPE_CHECKING:
    from serving.rules import RuleMatch

FEATURE_SCHEMA_VERSION = "1"
EMBEDDING_DIMENSION = 384

# Two customer messages this close in MiniLM space count as the same question asked again.
# NOTE: 0.85 is an estimate; it was not measured on paraphrase pairs or tuned.
REPEAT_SIMILARITY = 0.85
# Capped counts keep one pasted log full of "!!!" from dominating a linear model.
PUNCTUATION_CAP = 5

CONTEXT_FEATURE_NAMES: tuple[str, ...] = (
    "customer_turn_number",
    "turn_index_log",
    "seconds_since_start_log",
    "timestamps_present",
    "sentiment_negative",
    "sentiment_neutral",
    "sentiment_positive",
    "frustration",
    "frustration_previous_mean",
    "frustration_previous_max",
    "frustration_trend",
    "frustration_change",
    "negative_previous_mean",
    "negative_trend",
    "repeat_similarity_max",
    "repeat_count",
    "message_chars_log",
    "message_words_log",
    "uppercase_ratio",
    "exclamation_count",
    "question_count",
    "rules_immediate_log",
    "rules_rapid_log",
    "rules_scheduled_log",
    "rules_fired_since_last_customer_turn",
    "confidence_present",
    "confidence_last",
    "confidence_min",
    "confidence_drop",
    "kb_empty_count",
    "assistant_turns_log",
)

EMBEDDING_FEATURE_NAMES: tuple[str, ...] = tuple(
    f"embedding_{index:03d}" for index in range(EMBEDDING_DIMENSION)
)

FEATURE_NAMES: tuple[str, ...] = EMBEDDING_FEATURE_NAMES + CONTEXT_FEATURE_NAMES


@dataclass(frozen=True)
class MessageSignals:
    """Outputs of the per-message models for one customer message."""

    embedding: np.ndarray
    sentiment: np.ndarray
    frustration: float


@dataclass
class FeatureState:
    """Running aggregates of one conversation, enough to compute the next turn's features.

    Every field is a plain number or a short list, so the state can be stored between turns
    (in process or in Redis) and the cost of a turn does not grow with the conversation.
    """

    customer_turns: int = 0
    assistant_turns: int = 0
    frustration_sum: float = 0.0
    frustration_max: float = 0.0
    frustration_last: float | None = None
    negative_sum: float = 0.0
    confidence_last: float | None = None
    confidence_min: float | None = None
    confidence_max: float | None = None
    kb_empty_count: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    rules_since_customer_turn: int = 0
    first_timestamp: str | None = None
    # float32 rows, 1.5 KB each; Python float lists took about 12 KB per customer turn.
    previous_embeddings: list[np.ndarray] = field(default_factory=list)

    def to_dict(self, *, embeddings: bool = True) -> dict[str, Any]:
        """Return the state as JSON-serialisable plain types.

        With `embeddings=False` the embedding rows are left out, for callers that store them
        in a compact binary form of their own.
        """
        data: dict[str, Any] = {
            "customer_turns": self.customer_turns,
            "assistant_turns": self.assistant_turns,
            "frustration_sum": self.frustration_sum,
            "frustration_max": self.frustration_max,
            "frustration_last": self.frustration_last,
            "negative_sum": self.negative_sum,
            "confidence_last": self.confidence_last,
            "confidence_min": self.confidence_min,
            "confidence_max": self.confidence_max,
            "kb_empty_count": self.kb_empty_count,
            "rule_counts": dict(self.rule_counts),
            "rules_since_customer_turn": self.rules_since_customer_turn,
            "first_timestamp": self.first_timestamp,
        }
        if embeddings:
            data["previous_embeddings"] = [row.tolist() for row in self.previous_embeddings]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureState:
        """Rebuild a state written by `to_dict`; embeddings may be lists or arrays."""
        values = dict(data)
        values["previous_embeddings"] = [
            np.asarray(row, dtype=np.float32) for row in values.get("previous_embeddings", [])
        ]
        return cls(**values)


class ConversationFeatures:
    """Compute escalation feature vectors turn by turn for one conversation.

    Call `observe_turn` for every turn in order (it updates the counters that assistant and
    system turns feed), `observe_matches` with the rule matches that fired at each turn, and
    `customer_turn_vector` for each customer turn to get its feature vector.

    NOTE: `previous_embeddings` keeps one embedding per customer turn for the repetition
    features, so memory grows by about 1.6 KB per customer turn. The schema caps turns at 1,000.
    """

    def __init__(self, state: FeatureState | None = None) -> None:
        self.state = state if state is not None else FeatureState()

    def observe_turn(self, turn: Turn, conversation: Conversation) -> None:
        """Update the running counters with a turn that is not the customer's own message."""
        state = self.state
        self._note_timestamp(turn, conversation)
        if turn.role is not Role.ASSISTANT:
            return

        state.assistant_turns += 1
        if turn.confidence is not None:
            state.confidence_last = turn.confidence
            state.confidence_min = _min_optional(state.confidence_min, turn.confidence)
            state.confidence_max = _max_optional(state.confidence_max, turn.confidence)
        if turn.kb_results == 0:
            state.kb_empty_count += 1

    def observe_matches(self, matches: Sequence[RuleMatch]) -> None:
        """Count rule matches that fired at the latest observed turn."""
        for match in matches:
            tier = match.tier.value
            self.state.rule_counts[tier] = self.state.rule_counts.get(tier, 0) + 1
            self.state.rules_since_customer_turn += 1

    def customer_turn_vector(
        self,
        turn_index: int,
        conversation: Conversation,
        signals: MessageSignals,
    ) -> np.ndarray:
        """Return the float32 feature vector of a customer turn, then fold the turn into the state.

        Rule matches of this turn must be passed to `observe_matches` before this call, so the
        vector includes them.
        """
        turn = conversation.turns[turn_index]
        if turn.role is not Role.CUSTOMER:
            raise ValueError(
                f"conversation {conversation.id!r}, turn {turn_index}: features are computed "
                f"for customer turns only, this turn's role is {turn.role.value!r}"
            )
        self._note_timestamp(turn, conversation)
        context = self._context_values(turn_index, turn, conversation, signals)
        vector = np.concatenate(
            [np.asarray(signals.embedding, dtype=np.float32).reshape(-1),
             np.asarray(context, dtype=np.float32)]
        )
        if vector.shape[0] != len(FEATURE_NAMES):
            raise ValueError(
                f"feature vector has {vector.shape[0]} values, expected {len(FEATURE_NAMES)}; "
                f"the embedding must have {EMBEDDING_DIMENSION} dimensions"
            )
        self._fold_customer_turn(signals)
        return vector

    def _context_values(
        self, turn_index: int, turn: Turn, conversation: Conversation, signals: MessageSignals
    ) -> list[float]:
        state = self.state
        sentiment = np.asarray(signals.sentiment, dtype=np.float64).reshape(-1)
        frustration = float(signals.frustration)
        negative = float(sentiment[0])
        earlier = state.customer_turns

        frustration_mean = state.frustration_sum / earlier if earlier else 0.0
        negative_mean = state.negative_sum / earlier if earlier else 0.0
        frustration_last = state.frustration_last if state.frustration_last is not None else \
            frustration
        repeat_max, repeat_count = self._repetition(signals.embedding)
        seconds = self._seconds_since_start(turn)
        counts = state.rule_counts

        return [
            float(earlier + 1),
            math.log1p(turn_index),
            math.log1p(seconds) if seconds is not None else 0.0,
            1.0 if seconds is not None else 0.0,
            negative,
            float(sentiment[1]),
            float(sentiment[2]),
            frustration,
            frustration_mean,
            state.frustration_max,
            frustration - frustration_mean if earlier else 0.0,
            frustration - frustration_last,
            negative_mean,
            negative - negative_mean if earlier else 0.0,
            repeat_max,
            float(repeat_count),
            math.log1p(len(turn.text)),
            math.log1p(len(turn.text.split())),
            uppercase_ratio(turn.text),
            float(min(turn.text.count("!"), PUNCTUATION_CAP)),
            float(min(turn.text.count("?"), PUNCTUATION_CAP)),
            math.log1p(counts.get(Tier.IMMEDIATE.value, 0)),
            math.log1p(counts.get(Tier.RAPID.value, 0)),
            math.log1p(counts.get(Tier.SCHEDULED.value, 0)),
            float(state.rules_since_customer_turn),
            1.0 if state.confidence_last is not None else 0.0,
            state.confidence_last if state.confidence_last is not None else 1.0,
            state.confidence_min if state.confidence_min is not None else 1.0,
            _confidence_drop(state),
            float(state.kb_empty_count),
            math.log1p(state.assistant_turns),
        ]

    def _repetition(self, embedding: np.ndarray) -> tuple[float, int]:
        if not self.state.previous_embeddings:
            return 0.0, 0
        earlier = np.stack(self.state.previous_embeddings)
        current = np.asarray(embedding, dtype=np.float32).reshape(-1)
        similarities = earlier @ current
        return float(similarities.max()), int((similarities >= REPEAT_SIMILARITY).sum())

    def _seconds_since_start(self, turn: Turn) -> float | None:
        if turn.timestamp is None or self.state.first_timestamp is None:
            return None
        start = datetime.fromisoformat(self.state.first_timestamp)
        return max(0.0, (_aware(turn.timestamp) - _aware(start)).total_seconds())

    def _note_timestamp(self, turn: Turn, conversation: Conversation) -> None:
        if self.state.first_timestamp is not None:
            return
        start = conversation.started_at or turn.timestamp
        if start is not None:
            self.state.first_timestamp = start.isoformat()

    def _fold_customer_turn(self, signals: MessageSignals) -> None:
        state = self.state
        frustration = float(signals.frustration)
        state.customer_turns += 1
        state.frustration_sum += frustration
        state.frustration_max = max(state.frustration_max, frustration)
        state.frustration_last = frustration
        state.negative_sum += float(np.asarray(signals.sentiment).reshape(-1)[0])
        state.rules_since_customer_turn = 0
        state.previous_embeddings.append(
            np.array(signals.embedding, dtype=np.float32).reshape(-1)
        )


def conversation_feature_matrix(
    conversation: Conversation,
    signals: Sequence[MessageSignals],
    matches: Sequence[RuleMatch],
) -> np.ndarray:
    """Return the [n_customer_turns, n_features] matrix of a whole conversation.

    `signals` contains one entry per customer turn, in order; `matches` are the rule matches of the
    whole conversation (each carries the turn index where it fired).
    """
    customer_indices = conversation.customer_turn_indices()
    if len(signals) != len(customer_indices):
        raise ValueError(
            f"conversation {conversation.id!r} has {len(customer_indices)} customer turns but "
            f"{len(signals)} message signals were given"
        )

    matches_by_turn: dict[int, list[RuleMatch]] = {}
    for match in matches:
        matches_by_turn.setdefault(match.turn_index, []).append(match)

    builder = ConversationFeatures()
    rows: list[np.ndarray] = []
    position = 0
    for index, turn in enumerate(conversation.turns):
        builder.observe_matches(matches_by_turn.get(index, []))
        if turn.role is Role.CUSTOMER:
            rows.append(builder.customer_turn_vector(index, conversation, signals[position]))
            position += 1
        else:
            builder.observe_turn(turn, conversation)

    if not rows:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.vstack(rows)


def uppercase_ratio(text: str) -> float:
    """Return the share of upper-case letters among the letters of `text` (0 without letters)."""
    letters = [character for character in text if character.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for character in letters if character.isupper()) / len(letters)


def _confidence_drop(state: FeatureState) -> float:
    if state.confidence_max is None or state.confidence_last is None:
        return 0.0
    return state.confidence_max - state.confidence_last


def _min_optional(current: float | None, value: float) -> float:
    return value if current is None else min(current, value)


def _max_optional(current: float | None, value: float) -> float:
    return value if current is None else max(current, value)


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------ turn sequence features

# Two turns of one side this close in TF-IDF space count as the same message sent again: the
# chatbot repeating a canned answer, or the customer asking the same question.
# NOTE: 0.8 and 0.99 are estimates; they were not tuned on MHCH or elsewhere.
TURN_REPEAT_SIMILARITY = 0.8
TURN_EXACT_REPEAT_SIMILARITY = 0.99
# The previous turn's words count half as much as the current turn's under one shared penalty.
# 0.5 beat 0.25 and 1.0 in grouped 5-fold cross-validation on the MHCH clothing eval set.
PREVIOUS_TEXT_WEIGHT = 0.5
# The history blocks (the sum of all earlier turns' text vectors per side, L2-normalised over
# both blocks together) get this length. In grouped 5-fold cross-validation on the MHCH clothing
# eval set (3 fold seeds), 0.5 beat 0.3 and 1.0 and tied 0.7, and an undecayed sum beat
# per-turn decays of 0.3 to 0.8.
HISTORY_TEXT_WEIGHT = 0.5

_TURN_SIDE_FEATURES: tuple[str, ...] = (
    "turn_index_log",
    "words_log",
    "chars_log",
    "empty_text",
    "previous_similarity",
    "previous_customer",
    "previous_assistant",
    "repeat_similarity_max",
    "repeat_exact",
    "repeat_count",
    "other_side_similarity_max",
    "last_customer_similarity",
    "last_assistant_similarity",
    "same_side_turns_log",
    "other_side_turns_log",
    "same_side_run",
    "previous_repeat_similarity",
    "assistant_repeats",
    "customer_repeats",
    "turns_since_customer_log",
)

# Every context value appears twice, once active on customer turns and once on the others,
# so a linear head can weigh a repeated bot answer differently from a repeated question.
TURN_CONTEXT_FEATURE_NAMES: tuple[str, ...] = (
    ("is_customer",)
    + tuple(f"customer_{name}" for name in _TURN_SIDE_FEATURES)
    + tuple(f"assistant_{name}" for name in _TURN_SIDE_FEATURES)
)

TURN_TEXT_BLOCKS: tuple[str, ...] = (
    "text_customer", "text_assistant", "previous_text_customer", "previous_text_assistant",
    "history_text_customer", "history_text_assistant",
)


def turn_feature_names(text_width: int) -> list[str]:
    """Return the names of the turn sequence features for a text encoder of `text_width` columns.

    The layout is the context values, then six text blocks of `text_width` columns each. The
    current turn's text goes to the customer or the assistant block, the previous turn's text
    to the previous block of its side, and the earlier turns of each side to that side's
    history block.
    """
    if text_width < 1:
        raise ValueError(f"text_width is {text_width}; the text encoder needs 1 or more columns")
    names = list(TURN_CONTEXT_FEATURE_NAMES)
    for block in TURN_TEXT_BLOCKS:
        names.extend(f"{block}_{column:05d}" for column in range(text_width))
    return names


@dataclass(frozen=True)
class SparseFeatureRow:
    """One feature vector as sorted column indices and float32 values, of length `width`."""

    indices: np.ndarray
    values: np.ndarray
    width: int

    def to_dense(self) -> np.ndarray:
        """Return the row as a dense float32 vector of length `width`."""
        dense = np.zeros(self.width, dtype=np.float32)
        dense[self.indices] = self.values
        return dense


@dataclass
class TurnSequenceState:
    """Memory of the turn sequence features for one conversation: each earlier turn's side,
    its sparse text vector and its best similarity to an earlier turn of its side.

    Memory grows with the text vectors of the earlier turns (tens of non-zero values each).
    """

    customer_sides: list[bool] = field(default_factory=list)
    text_columns: list[np.ndarray] = field(default_factory=list)
    text_values: list[np.ndarray] = field(default_factory=list)
    repeat_maxima: list[float] = field(default_factory=list)
    customer_repeats: int = 0
    assistant_repeats: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-serialisable plain types."""
        return {
            "customer_sides": list(self.customer_sides),
            "text_columns": [row.tolist() for row in self.text_columns],
            "text_values": [row.tolist() for row in self.text_values],
            "repeat_maxima": list(self.repeat_maxima),
            "customer_repeats": self.customer_repeats,
            "assistant_repeats": self.assistant_repeats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnSequenceState:
        """Rebuild a state written by `to_dict`."""
        return cls(
            customer_sides=[bool(side) for side in data["customer_sides"]],
            text_columns=[np.asarray(row, dtype=np.int64) for row in data["text_columns"]],
            text_values=[np.asarray(row, dtype=np.float32) for row in data["text_values"]],
            repeat_maxima=[float(value) for value in data["repeat_maxima"]],
            customer_repeats=int(data["customer_repeats"]),
            assistant_repeats=int(data["assistant_repeats"]),
        )


class TurnSequenceFeatures:
    """Compute features of every turn (customer and assistant) from its sparse text vector and
    the turns before it: position, side, the previous turn's text, the text history and
    repetition.

    Call `turn_row` once per turn, in order. It reads only earlier turns, so the row of a turn
    is the same whether the conversation is scored live or after it ended. Text vectors must
    be L2-normalised (as `serving.token_encoder.TokenEncoder` returns them), so dot products
    are cosine similarities. Turns of agents and systems count as the assistant side.
    """

    def __init__(self, text_width: int, state: TurnSequenceState | None = None) -> None:
        if text_width < 1:
            raise ValueError(f"text_width is {text_width}; the text encoder needs 1 or more "
                             "columns")
        self.text_width = text_width
        self.width = len(TURN_CONTEXT_FEATURE_NAMES) + len(TURN_TEXT_BLOCKS) * text_width
        self.state = state if state is not None else TurnSequenceState()

    def turn_row(self, turn: Turn, columns: np.ndarray, values: np.ndarray) -> SparseFeatureRow:
        """Return the feature row of `turn`, whose text vector is (`columns`, `values`), then
        fold the turn into the state."""
        columns = np.asarray(columns, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        if columns.shape != values.shape or (columns.size and (
                columns.min() < 0 or columns.max() >= self.text_width)):
            raise ValueError(f"text vector must be matching columns and values with columns in "
                             f"[0, {self.text_width}); got {columns.size} columns and "
                             f"{values.size} values")

        customer = turn.role is Role.CUSTOMER
        similarities = self._similarities(columns, values)
        side_values = self._side_values(turn, customer, similarities)
        repeat_max = side_values[_TURN_SIDE_FEATURES.index("repeat_similarity_max")]

        row = self._assemble(customer, side_values, columns, values)
        self._fold(customer, columns, values, repeat_max)
        return row

    def _similarities(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        state = self.state
        if not state.text_columns:
            return np.zeros(0, dtype=np.float64)
        current = np.zeros(self.text_width, dtype=np.float64)
        current[columns] = values
        return np.asarray([float(earlier_values @ current[earlier_columns])
                           for earlier_columns, earlier_values
                           in zip(state.text_columns, state.text_values, strict=True)])

    def _side_values(self, turn: Turn, customer: bool, similarities: np.ndarray) -> list[float]:
        state = self.state
        sides = state.customer_sides
        index = len(sides)
        same = [position for position, side in enumerate(sides) if side == customer]
        other = [position for position, side in enumerate(sides) if side != customer]
        customer_turns = [position for position, side in enumerate(sides) if side]
        assistant_turns = [position for position, side in enumerate(sides) if not side]

        run = 0
        for side in reversed(sides):
            if side != customer:
                break
            run += 1
        repeat_max = max((similarities[position] for position in same), default=0.0)
        words = len(turn.text.split())

        return [
            math.log1p(index),
            math.log1p(words),
            math.log1p(len(turn.text)),
            1.0 if words == 0 else 0.0,
            float(similarities[-1]) if index else 0.0,
            1.0 if index and sides[-1] else 0.0,
            1.0 if index and not sides[-1] else 0.0,
            float(repeat_max),
            1.0 if repeat_max >= TURN_EXACT_REPEAT_SIMILARITY else 0.0,
            float(sum(1 for position in same if similarities[position] >= TURN_REPEAT_SIMILARITY)),
            float(max((similarities[position] for position in other), default=0.0)),
            float(similarities[customer_turns[-1]]) if customer_turns else 0.0,
            float(similarities[assistant_turns[-1]]) if assistant_turns else 0.0,
            math.log1p(len(same)),
            math.log1p(len(other)),
            float(run),
            state.repeat_maxima[-1] if index else 0.0,
            float(state.assistant_repeats),
            float(state.customer_repeats),
            math.log1p(index - customer_turns[-1]) if customer_turns else 0.0,
        ]

    def _assemble(self, customer: bool, side_values: list[float], columns: np.ndarray,
                  values: np.ndarray) -> SparseFeatureRow:
        count = len(_TURN_SIDE_FEATURES)
        context = np.zeros(len(TURN_CONTEXT_FEATURE_NAMES), dtype=np.float32)
        context[0] = 1.0 if customer else 0.0
        offset = 1 if customer else 1 + count
        context[offset:offset + count] = side_values

        base = len(TURN_CONTEXT_FEATURE_NAMES)
        block = base + (0 if customer else 1) * self.text_width
        parts_indices = [np.flatnonzero(context), block + columns]
        parts_values = [context[context != 0.0], values]

        state = self.state
        if state.customer_sides:
            previous_block = base + (2 if state.customer_sides[-1] else 3) * self.text_width
            parts_indices.append(previous_block + state.text_columns[-1])
            parts_values.append(PREVIOUS_TEXT_WEIGHT * state.text_values[-1])
            history_indices, history_values = self._history(base)
            parts_indices.append(history_indices)
            parts_values.append(history_values)

        indices = np.concatenate(parts_indices).astype(np.int64)
        row_values = np.concatenate(parts_values).astype(np.float32)
        order = np.argsort(indices, kind="stable")
        return SparseFeatureRow(indices[order], row_values[order], self.width)

    def _history(self, base: int) -> tuple[np.ndarray, np.ndarray]:
        # Sum the text vectors of all earlier turns of each side into that side's history
        # block, then scale both blocks together to length HISTORY_TEXT_WEIGHT.
        # NOTE: the sum is rebuilt from every earlier turn. Running sums in the state would
        # save that work, but a turn would still cost time in proportion to the conversation's
        # length, because the repetition features compare it with every earlier turn.
        state = self.state
        indices: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for block, customer in ((4, True), (5, False)):
            side_turns = [position for position, side in enumerate(state.customer_sides)
                          if side == customer]
            if not side_turns:
                continue
            columns, inverse = np.unique(
                np.concatenate([state.text_columns[position] for position in side_turns]),
                return_inverse=True)
            summed = np.zeros(columns.shape[0], dtype=np.float64)
            np.add.at(summed, inverse, np.concatenate(
                [state.text_values[position] for position in side_turns]).astype(np.float64))
            indices.append(base + block * self.text_width + columns)
            values.append(summed)
        if not indices:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        joined = np.concatenate(values)
        norm = float(np.sqrt(np.dot(joined, joined)))
        if norm > 0.0:
            joined = joined * (HISTORY_TEXT_WEIGHT / norm)
        return np.concatenate(indices).astype(np.int64), joined.astype(np.float32)

    def _fold(self, customer: bool, columns: np.ndarray, values: np.ndarray,
              repeat_max: float) -> None:
        state = self.state
        if repeat_max >= TURN_REPEAT_SIMILARITY:
            if customer:
                state.customer_repeats += 1
            else:
                state.assistant_repeats += 1
        state.customer_sides.append(customer)
        state.text_columns.append(columns.copy())
        state.text_values.append(values.copy())
        state.repeat_maxima.append(float(repeat_max))


def conversation_turn_rows(
    conversation: Conversation,
    text_vectors: Sequence[tuple[np.ndarray, np.ndarray]],
    text_width: int,
) -> list[SparseFeatureRow]:
    """Return the turn sequence feature row of every turn of a conversation, in order.

    `text_vectors` contains one (columns, values) pair per turn, as `TokenMatrix.row` returns.
    """
    if len(text_vectors) != len(conversation.turns):
        raise ValueError(f"conversation {conversation.id!r} has {len(conversation.turns)} turns "
                         f"but {len(text_vectors)} text vectors were given")
    builder = TurnSequenceFeatures(text_width)
    return [builder.turn_row(turn, columns, values)
            for turn, (columns, values) in zip(conversation.turns, text_vectors, strict=True)]
