"""Per-turn, per-conversation and per-message tables of labelled corpora, as pandas DataFrames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from serving.schema import Conversation, Role

# Labels of the thirds of a conversation used by `position_bucket`, in order.
POSITION_BUCKETS = ("early", "middle", "late")

# A rating at or below this is the USS dissatisfaction signal (the authors' binary task).
DEFAULT_DISSATISFIED_RATING = 2


def relative_position(customer_turn_number: int, n_customer_turns: int) -> float:
    """Return where a customer turn sits in its conversation, from 0 (start) to 1 (end).

    The value is the centre of the turn's share of the conversation, (k + 0.5) / n for the
    k-th of n customer turns (k from 0), so a one-turn conversation sits at 0.5.
    """
    if n_customer_turns <= 0 or not 0 <= customer_turn_number < n_customer_turns:
        raise ValueError(
            f"customer turn number {customer_turn_number} is outside a conversation of "
            f"{n_customer_turns} customer turns; pass 0 <= number < n_customer_turns"
        )
    return (customer_turn_number + 0.5) / n_customer_turns


def position_bucket(position: float) -> str:
    """Return the third of the conversation a relative position in [0, 1] falls in."""
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"relative position {position} is outside [0, 1]")
    index = min(int(position * len(POSITION_BUCKETS)), len(POSITION_BUCKETS) - 1)
    return POSITION_BUCKETS[index]


def turn_table(
    conversations_by_split: Mapping[str, Sequence[Conversation]],
    *,
    dissatisfied_rating: int = DEFAULT_DISSATISFIED_RATING,
) -> pd.DataFrame:
    """Return one row per turn of every conversation, keyed by split and conversation id.

    Columns: split, conversation_id, source, turn_index, role, text, chars, words, and for
    customer turns customer_turn_number (from 0), n_customer_turns, relative_position,
    position (early, middle or late third), satisfaction (nullable) and dissatisfied
    (satisfaction <= `dissatisfied_rating`). Those customer-only columns are missing values
    on other turns.
    """
    rows: list[dict[str, Any]] = []
    for split, conversations in conversations_by_split.items():
        for conversation in conversations:
            rows.extend(_turn_rows(split, conversation, dissatisfied_rating))

    frame = pd.DataFrame(rows, columns=_TURN_COLUMNS)
    for column in ("customer_turn_number", "n_customer_turns", "satisfaction"):
        frame[column] = frame[column].astype("Int64")
    frame["dissatisfied"] = frame["dissatisfied"].astype("boolean")
    return frame


_TURN_COLUMNS = [
    "split", "conversation_id", "source", "turn_index", "role", "text", "chars", "words",
    "customer_turn_number", "n_customer_turns", "relative_position", "position",
    "satisfaction", "dissatisfied",
]


def _turn_rows(
    split: str, conversation: Conversation, dissatisfied_rating: int
) -> list[dict[str, Any]]:
    customer_indices = conversation.customer_turn_indices()
    customer_number = {index: number for number, index in enumerate(customer_indices)}
    rows = []
    for index, turn in enumerate(conversation.turns):
        row: dict[str, Any] = {
            "split": split,
            "conversation_id": conversation.id,
            "source": conversation.source,
            "turn_index": index,
            "role": turn.role.value,
            "text": turn.text,
            "chars": len(turn.text),
            "words": len(turn.text.split()),
        }
        if turn.role is Role.CUSTOMER:
            number = customer_number[index]
            position = relative_position(number, len(customer_indices))
            rating = turn.labels.satisfaction if turn.labels is not None else None
            row.update({
                "customer_turn_number": number,
                "n_customer_turns": len(customer_indices),
                "relative_position": position,
                "position": position_bucket(position),
                "satisfaction": rating,
                "dissatisfied": None if rating is None else rating <= dissatisfied_rating,
            })
        rows.append(row)
    return rows


def conversation_table(turns: pd.DataFrame) -> pd.DataFrame:
    """Return one row per conversation of a `turn_table`, in the order of first appearance.

    Columns: split, conversation_id, source, n_turns, n_customer_turns, n_rated,
    n_dissatisfied, dissatisfied (any customer turn is), first_dissatisfied_turn (customer turn
    number, missing when none) and first_dissatisfied_position (its relative position).
    """
    customer = turns[turns["role"] == Role.CUSTOMER.value]
    keys = ["split", "conversation_id"]

    summary = turns.groupby(keys, sort=False).agg(
        source=("source", "first"), n_turns=("turn_index", "size"))
    counts = customer.groupby(keys, sort=False).agg(
        n_customer_turns=("customer_turn_number", "size"),
        n_rated=("satisfaction", "count"),
        n_dissatisfied=("dissatisfied", lambda flags: int(flags.fillna(False).sum())),
    )
    first = (customer[customer["dissatisfied"].fillna(False).astype(bool)]
             .groupby(keys, sort=False)
             .agg(first_dissatisfied_turn=("customer_turn_number", "min"),
                  first_dissatisfied_position=("relative_position", "min")))

    table = summary.join(counts).join(first).reset_index()
    for column in ("n_customer_turns", "n_rated", "n_dissatisfied"):
        table[column] = table[column].fillna(0).astype(int)
    table["first_dissatisfied_turn"] = table["first_dissatisfied_turn"].astype("Int64")
    table["dissatisfied"] = table["n_dissatisfied"] > 0
    return table


def message_label_table(
    conversations_by_split: Mapping[str, Sequence[Conversation]],
) -> pd.DataFrame:
    """Return one row per labelled customer message of single-message corpora such as GoEmotions.

    Columns: split, conversation_id, text, chars, words, sentiment and frustration (missing
    when the message has no such label). Messages without any label are left out.
    """
    rows = []
    for split, conversations in conversations_by_split.items():
        for conversation in conversations:
            for turn in conversation.turns:
                labels = turn.labels
                if turn.role is not Role.CUSTOMER or labels is None:
                    continue
                if labels.sentiment is None and labels.frustration is None:
                    continue
                rows.append({
                    "split": split,
                    "conversation_id": conversation.id,
                    "text": turn.text,
                    "chars": len(turn.text),
                    "words": len(turn.text.split()),
                    "sentiment": labels.sentiment.value if labels.sentiment else None,
                    "frustration": labels.frustration,
                })

    frame = pd.DataFrame(rows, columns=["split", "conversation_id", "text", "chars", "words",
                                        "sentiment", "frustration"])
    frame["frustration"] = frame["frustration"].astype("boolean")
    return frame


def share_table(frame: pd.DataFrame, by: str | list[str], column: str) -> pd.DataFrame:
    """Return the counts and shares of each value of `column` within each group of `by`.

    The result has one row per group and, per value, a count column and a share column named
    `<value>_share`, so label balance can be compared across splits or sources.
    """
    for name in ([by] if isinstance(by, str) else by) + [column]:
        if name not in frame.columns:
            raise ValueError(f"column {name!r} not found; the frame has {list(frame.columns)}")

    counts = pd.crosstab([frame[name] for name in ([by] if isinstance(by, str) else by)],
                         frame[column])
    shares = counts.div(counts.sum(axis=1), axis=0).add_suffix("_share")
    counts.columns = [str(value) for value in counts.columns]
    return counts.join(shares.rename(columns=str)).rename_axis(columns=None)


def examples_with_context(
    turns: pd.DataFrame, selected: pd.DataFrame, *, max_chars: int = 160
) -> pd.DataFrame:
    """Return selected customer turns beside the turn before them, both cut to `max_chars`.

    `selected` contains rows of `turns` (same split, conversation_id and turn_index). Texts longer
    than `max_chars` end with an ellipsis, so examples stay short in a notebook.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars is {max_chars}; pass a positive number of characters")

    keys = ["split", "conversation_id", "turn_index"]
    previous = turns[keys + ["role", "text"]].copy()
    previous["turn_index"] = previous["turn_index"] + 1
    previous = previous.rename(columns={"role": "previous_role", "text": "previous_text"})

    columns = keys + [name for name in ("satisfaction", "text") if name in selected.columns]
    examples = selected[columns].merge(previous, on=keys, how="left")
    for column in ("text", "previous_text"):
        examples[column] = examples[column].map(
            lambda text: shorten(text, max_chars) if isinstance(text, str) else text)
    return examples


def shorten(text: str, max_chars: int) -> str:
    """Return `text` on one line, cut to at most `max_chars` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= max_chars:
        return flat
    return flat[: max_chars - 1].rstrip() + "…"
