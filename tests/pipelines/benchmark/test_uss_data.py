"""Tests of the USS benchmark's feature tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.benchmark.uss_data import UssTable, previous_turn_table


def _table() -> UssTable:
    features = np.arange(1, 13, dtype=np.float32).reshape(6, 2)
    return UssTable(
        path=Path("sample.txt"),
        features=features,
        ratings=np.array([3, 2, 3, 3, 4, 3]),
        escalation_labels=np.array([1, 1, 0, 0, 0, 0]),
        conversation_ids=["a", "a", "a", "b", "b", "c"],
        n_dialogues=3,
        feature_seconds=0.0,
    )


def test_previous_turn_table_shifts_within_dialogue() -> None:
    shifted = previous_turn_table(_table())

    assert shifted.features.tolist() == [
        [0.0, 0.0], [1.0, 2.0], [3.0, 4.0],   # dialogue a
        [0.0, 0.0], [7.0, 8.0],               # dialogue b
        [0.0, 0.0],                           # dialogue c
    ]


def test_previous_turn_table_keeps_labels() -> None:
    table = _table()

    shifted = previous_turn_table(table)

    assert shifted.ratings.tolist() == table.ratings.tolist()
    assert shifted.escalation_labels.tolist() == table.escalation_labels.tolist()
    assert shifted.conversation_ids == table.conversation_ids
    assert table.features[0].tolist() == [1.0, 2.0]
