"""Tests of pipelines.analysis.corpus_tables on hand-built conversations and the bundled USS."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.analysis.corpus_tables import (
    conversation_table,
    examples_with_context,
    message_label_table,
    position_bucket,
    relative_position,
    share_table,
    shorten,
    turn_table,
)
from pipelines.datasets.uss import read_bundled_uss
from serving.schema import Conversation, parse_conversation


def _conversation(identifier: str, ratings: list[int | None]) -> Conversation:
    turns = []
    for number, rating in enumerate(ratings):
        labels = {"satisfaction": rating} if rating is not None else None
        turns.append({"role": "customer", "text": f"question {number} here", "labels": labels})
        turns.append({"role": "assistant", "text": f"answer {number}"})
    data = {"id": identifier, "source": "hand", "turns": turns}
    return parse_conversation(_drop_none(data))


def _drop_none(value: object) -> object:
    if isinstance(value, dict):
        return {key: _drop_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_none(item) for item in value]
    return value


@pytest.fixture
def hand_turns() -> pd.DataFrame:
    return turn_table({
        "train": [_conversation("c1", [3, 2, 1]), _conversation("c2", [3, None])],
        "test": [_conversation("c3", [4])],
    })


def test_relative_position_centres() -> None:
    assert relative_position(0, 1) == pytest.approx(0.5)
    assert relative_position(0, 4) == pytest.approx(0.125)
    assert relative_position(3, 4) == pytest.approx(0.875)


def test_relative_position_rejects_outside() -> None:
    with pytest.raises(ValueError, match="customer turn number 4 is outside"):
        relative_position(4, 4)


def test_position_bucket_thirds() -> None:
    assert position_bucket(0.0) == "early"
    assert position_bucket(0.34) == "middle"
    assert position_bucket(0.9) == "late"
    assert position_bucket(1.0) == "late"


def test_position_bucket_rejects_outside() -> None:
    with pytest.raises(ValueError, match="outside"):
        position_bucket(1.5)


def test_turn_table_rows_and_roles(hand_turns: pd.DataFrame) -> None:
    assert len(hand_turns) == 12
    assert list(hand_turns["role"].iloc[:2]) == ["customer", "assistant"]
    assert hand_turns["split"].tolist().count("test") == 2


def test_turn_table_customer_columns(hand_turns: pd.DataFrame) -> None:
    first = hand_turns[hand_turns["conversation_id"] == "c1"]
    customer = first[first["role"] == "customer"]
    assert customer["customer_turn_number"].tolist() == [0, 1, 2]
    assert customer["n_customer_turns"].tolist() == [3, 3, 3]
    assert customer["position"].tolist() == ["early", "middle", "late"]
    assert customer["dissatisfied"].tolist() == [False, True, True]
    assert customer["words"].tolist() == [3, 3, 3]


def test_turn_table_unrated_and_assistant_missing(hand_turns: pd.DataFrame) -> None:
    second = hand_turns[hand_turns["conversation_id"] == "c2"]
    assert pd.isna(second["satisfaction"].iloc[2])
    assert pd.isna(second["dissatisfied"].iloc[2])
    assert pd.isna(second["customer_turn_number"].iloc[1])


def test_conversation_table_counts(hand_turns: pd.DataFrame) -> None:
    table = conversation_table(hand_turns).set_index("conversation_id")
    assert table.loc["c1", "n_turns"] == 6
    assert table.loc["c1", "n_dissatisfied"] == 2
    assert table.loc["c1", "first_dissatisfied_turn"] == 1
    assert table.loc["c1", "first_dissatisfied_position"] == pytest.approx(0.5)
    assert table.loc["c2", "n_rated"] == 1
    assert not table.loc["c2", "dissatisfied"]
    assert pd.isna(table.loc["c2", "first_dissatisfied_turn"])
    assert table.loc["c3", "split"] == "test"


def test_conversation_table_matches_bundled_counts() -> None:
    # Totals of data/README.md: 22,108 + 25,666 turns, 11,553 + 12,833 customer turns.
    table = conversation_table(turn_table({"all": read_bundled_uss()}))
    by_source = table.groupby("source")[["n_turns", "n_customer_turns"]].sum()
    assert len(table) == 2000
    assert by_source.loc["uss-mwoz", "n_turns"] == 22_108
    assert by_source.loc["uss-sgd", "n_customer_turns"] == 12_833
    # MultiWOZ has 9 + 661 customer turns rated 1 or 2.
    assert table.loc[table["source"] == "uss-mwoz", "n_dissatisfied"].sum() == 670


def test_message_label_table_keeps_labelled() -> None:
    labelled = parse_conversation({"id": "m1", "turns": [
        {"role": "customer", "text": "this is awful",
         "labels": {"sentiment": "negative", "frustration": True}}]})
    unlabelled = parse_conversation({"id": "m2", "turns": [{"role": "customer", "text": "hi"}]})
    frame = message_label_table({"dev": [labelled, unlabelled]})
    assert frame["conversation_id"].tolist() == ["m1"]
    assert frame["sentiment"].tolist() == ["negative"]
    assert bool(frame["frustration"].iloc[0])


def test_share_table_rows_sum_to_one(hand_turns: pd.DataFrame) -> None:
    customer = hand_turns[hand_turns["role"] == "customer"].dropna(subset=["satisfaction"])
    table = share_table(customer, "split", "satisfaction")
    shares = table[[column for column in table.columns if column.endswith("_share")]]
    assert shares.sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    assert table.loc["train", "3"] == 2


def test_share_table_names_missing_column(hand_turns: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="column 'grade' not found"):
        share_table(hand_turns, "split", "grade")


def test_examples_with_context_previous_turn(hand_turns: pd.DataFrame) -> None:
    selected = hand_turns[(hand_turns["conversation_id"] == "c1")
                          & (hand_turns["turn_index"] == 2)]
    examples = examples_with_context(hand_turns, selected, max_chars=8)
    assert examples["previous_text"].iloc[0] == "answer 0"
    assert examples["previous_role"].iloc[0] == "assistant"
    assert examples["text"].iloc[0] == "questio…"


def test_examples_with_context_first_turn_has_none(hand_turns: pd.DataFrame) -> None:
    selected = hand_turns[hand_turns["turn_index"] == 0].head(1)
    examples = examples_with_context(hand_turns, selected)
    assert pd.isna(examples["previous_text"].iloc[0])


def test_shorten_flattens_and_cuts() -> None:
    assert shorten("a\nb   c", 10) == "a b c"
    assert shorten("abcdefghij", 5) == "abcd…"
    assert len(shorten("x" * 50, 20)) == 20
