"""Tests of pipelines.analysis.threshold_sweep on hand-built replay tables and a real replay."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis.labelled_splits import uss_split
from pipelines.analysis.threshold_sweep import curve_at, replay_turn_table, sweep_turns
from pipelines.backtest.gold import GoldOutcome, gold_outcome
from pipelines.backtest.replay import ReplayRun, replay_all
from pipelines.backtest.scoring import CachingScorer
from pipelines.backtest.sweep import ThresholdCurve, threshold_curve
from serving.roster import EXAMPLE_ROSTER_PATH, load_roster
from serving.schema import Conversation
from tests.conftest import TrainedBundle


def _rows(conversation_id: str, turns: list[tuple[str, float, bool, bool | None]],
          first_dissatisfied: int | None) -> list[dict[str, Any]]:
    """Rows (role, probability, rule fired, label) of one conversation, in turn order."""
    rows = []
    customer_turns = 0
    for index, (role, probability, rule_fired, label) in enumerate(turns):
        customer_turns += role == "customer"
        rows.append({"conversation_id": conversation_id, "turn_index": index, "role": role,
                     "customer_turns_so_far": customer_turns, "probability": probability,
                     "rule_fired": rule_fired, "label": label,
                     "first_dissatisfied": first_dissatisfied})
    return rows


@pytest.fixture
def table() -> pd.DataFrame:
    rows = (
        # Needed a human at turn 4 (third customer turn); the model reaches 0.6 at turn 2.
        _rows("early", [("customer", 0.1, False, False), ("assistant", 0.1, False, None),
                        ("customer", 0.6, False, True), ("assistant", 0.6, False, None),
                        ("customer", 0.2, False, True)], first_dissatisfied=4)
        # Never needed a human; a rule fires at the assistant turn 1.
        + _rows("ruled", [("customer", 0.1, False, False), ("assistant", 0.1, True, None),
                          ("customer", 0.1, True, False)], first_dissatisfied=None)
        # Needed a human at its first turn, where the model reaches 0.9.
        + _rows("first", [("customer", 0.9, False, True)], first_dissatisfied=0)
    )
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("boolean")
    frame["first_dissatisfied"] = frame["first_dissatisfied"].astype("Int64")
    return frame


def test_sweep_turns_lead_and_catch(table: pd.DataFrame) -> None:
    row = sweep_turns(table, [0.5]).iloc[0]
    assert row["catch_rate"] == pytest.approx(1.0)
    # Leads: 3 - 2 = 1 customer turn for "early", 0 for "first".
    assert row["mean_lead_turns"] == pytest.approx(0.5)
    assert row["median_lead_turns"] == pytest.approx(0.5)
    assert row["conversation_rate"] == pytest.approx(1.0)
    assert row["false_alarm_rate"] == pytest.approx(1.0)


def test_sweep_turns_turn_figures(table: pd.DataFrame) -> None:
    row = sweep_turns(table, [0.5]).iloc[0]
    # Labelled customer turns: early 0/2/4, ruled 0/2, first 0. Alerts: early 2, ruled 2,
    # first 0, of which early 2 and first 0 are positive; positives are early 2/4 and first 0.
    assert row["turn_alert_rate"] == pytest.approx(3 / 6)
    assert row["turn_precision"] == pytest.approx(2 / 3)
    assert row["turn_recall"] == pytest.approx(2 / 3)


def test_sweep_turns_high_threshold(table: pd.DataFrame) -> None:
    row = sweep_turns(table, [0.95]).iloc[0]
    assert row["catch_rate"] == pytest.approx(0.0)
    assert math.isnan(row["mean_lead_turns"])
    # The rule still escalates "ruled": rules fire at every threshold.
    assert row["conversation_rate"] == pytest.approx(1 / 3)
    assert row["turn_precision"] == pytest.approx(0.0)


def test_sweep_turns_one_row_per_threshold(table: pd.DataFrame) -> None:
    sweep = sweep_turns(table, [0.0, 0.25, 1.0])
    assert sweep["threshold"].tolist() == [0.0, 0.25, 1.0]
    assert sweep["conversation_rate"].is_monotonic_decreasing


@pytest.mark.parametrize("thresholds", [[], [1.5], [-0.1, 0.5]])
def test_sweep_turns_rejects_invalid(table: pd.DataFrame, thresholds: list[float]) -> None:
    with pytest.raises(ValueError, match="thresholds must be a non-empty list"):
        sweep_turns(table, thresholds)


def test_curve_at_takes_interval_point() -> None:
    curve = ThresholdCurve(thresholds=np.array([0.2, 0.5, 1.0]),
                           rate=np.array([1.0, 0.5, 0.1]),
                           precision=np.array([0.4, 0.6, np.nan]),
                           recall=np.array([1.0, 0.7, 0.0]),
                           conversations=10, labelled=10, positives=4)
    table = curve_at(curve, [0.0, 0.2, 0.3, 0.5, 0.9])
    assert table["conversation_rate"].tolist() == [1.0, 1.0, 0.5, 0.5, 0.1]
    assert table["conversation_recall"].tolist() == [1.0, 1.0, 0.7, 0.7, 0.0]


def test_curve_at_rejects_above_curve() -> None:
    curve = ThresholdCurve(np.array([1.0]), np.array([0.0]), np.array([np.nan]),
                           np.array([0.0]), 1, 1, 1)
    with pytest.raises(ValueError, match="above the curve's last point"):
        curve_at(curve, [1.5])


@pytest.fixture(scope="module")
def replayed(trained_bundle: TrainedBundle) -> tuple[ReplayRun, list[GoldOutcome | None],
                                                     list[Conversation]]:
    conversations = uss_split("validation", sample=8)
    run = replay_all(CachingScorer(trained_bundle.path), conversations,
                     load_roster(EXAMPLE_ROSTER_PATH), policy_name="default")
    golds: list[GoldOutcome | None] = [
        gold_outcome(conversation, horizon=2, dissatisfied_rating=2)
        for conversation in conversations]
    return run, golds, conversations


def test_replay_turn_table_rows(replayed: tuple[ReplayRun, list[GoldOutcome | None],
                                                list[Conversation]]) -> None:
    run, golds, conversations = replayed
    table = replay_turn_table(run.replays, golds)
    assert len(table) == sum(len(conversation.turns) for conversation in conversations)
    customer = table[table["role"] == "customer"]
    assert customer["label"].notna().all()
    assert table.loc[table["role"] == "assistant", "label"].isna().all()


def test_replay_turn_table_skips_unlabelled(
    replayed: tuple[ReplayRun, list[GoldOutcome | None], list[Conversation]]
) -> None:
    run, golds, conversations = replayed
    table = replay_turn_table(run.replays, [None, *golds[1:]])
    assert conversations[0].id not in set(table["conversation_id"])


def test_replay_turn_table_rejects_length_mismatch(
    replayed: tuple[ReplayRun, list[GoldOutcome | None], list[Conversation]]
) -> None:
    run, golds, _ = replayed
    with pytest.raises(ValueError, match="7 gold outcomes for 8 replays"):
        replay_turn_table(run.replays, golds[:7])


def test_sweep_agrees_with_backtest_curve(
    replayed: tuple[ReplayRun, list[GoldOutcome | None], list[Conversation]]
) -> None:
    run, golds, _ = replayed
    curve = threshold_curve(run.replays, golds)
    sweep = sweep_turns(replay_turn_table(run.replays, golds), curve.thresholds)
    assert sweep["conversation_rate"].to_numpy() == pytest.approx(curve.rate)
    # A caught conversation has escalated, so the catch rate never exceeds the recall.
    assert (sweep["catch_rate"].to_numpy() <= curve.recall + 1e-12).all()
