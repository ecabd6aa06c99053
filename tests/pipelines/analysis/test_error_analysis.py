"""Tests of pipelines.analysis.error_analysis on turn tables whose outcomes are known."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from pipelines.analysis.error_analysis import (
    conversation_outcome_table,
    conversation_outcomes,
    outcome_examples,
    reason_counts,
    turn_error_rates,
    turn_outcomes,
)

THRESHOLD = 0.5
MODEL_REASON = {"source": "model", "code": "escalation_probability"}
RULE_REASON = {"source": "rule", "code": "human_request"}


def _turns(conversation_id: str, source: str, rows: list[tuple[int, bool, bool, float]],
           ) -> list[dict[str, Any]]:
    """Rows (label, dissatisfied, escalate, probability) for one conversation, in turn order."""
    result = []
    for number, (label, dissatisfied, escalate, probability) in enumerate(rows):
        reasons: tuple[dict[str, str], ...] = ()
        if escalate:
            reasons = (MODEL_REASON,) if probability >= THRESHOLD else (RULE_REASON,)
        result.append({
            "conversation_id": conversation_id, "source": source,
            "customer_turn_number": number, "n_customer_turns": len(rows),
            "relative_position": (number + 0.5) / len(rows),
            "position": ["early", "middle", "late"][min(int((number + 0.5) / len(rows) * 3), 2)],
            "satisfaction": 2 if dissatisfied else 3, "label": label,
            "dissatisfied": dissatisfied, "escalate": escalate, "probability": probability,
            "threshold": THRESHOLD,
            "alert_source": ("model" if probability >= THRESHOLD else "rule") if escalate
            else "none",
            "evidence": f"evidence {conversation_id} {number}", "reasons": reasons,
            "text": f"message {number} of {conversation_id}", "frustration": 0.1,
            "sentiment_negative": 0.2,
        })
    return result


@pytest.fixture
def turns() -> pd.DataFrame:
    rows = (
        # Caught: alert at turn 0, first dissatisfied turn 2, lead 2.
        _turns("caught", "a", [(1, False, True, 0.9), (1, False, True, 0.7),
                               (1, True, True, 0.8)])
        # Late: first alert at turn 2, after the dissatisfied turn 1.
        + _turns("late", "a", [(1, False, False, 0.1), (1, True, False, 0.2),
                               (0, False, True, 0.6)])
        # Missed: dissatisfied at turn 1, never an alert.
        + _turns("missed", "b", [(1, False, False, 0.05), (1, True, False, 0.3)])
        # False alarm raised by a rule at turn 1, never dissatisfied.
        + _turns("alarm", "b", [(0, False, False, 0.2), (0, False, True, 0.1),
                                (0, False, True, 0.1)])
        + _turns("quiet", "b", [(0, False, False, 0.1), (0, False, False, 0.2)])
    )
    return turn_outcomes(pd.DataFrame(rows))


def test_turn_outcomes_labels(turns: pd.DataFrame) -> None:
    counts = turns["outcome"].value_counts().to_dict()
    assert counts == {"hit": 3, "miss": 4, "false_alarm": 3, "quiet": 3}


def test_turn_outcomes_keeps_input(turns: pd.DataFrame) -> None:
    original = turns.drop(columns=["outcome"])
    turn_outcomes(original)
    assert "outcome" not in original.columns


def test_turn_outcomes_names_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"lacks the columns \['conversation_id'"):
        turn_outcomes(pd.DataFrame({"label": [1]}))


def test_turn_error_rates_by_source(turns: pd.DataFrame) -> None:
    rates = turn_error_rates(turns, "source")
    # Source a: hits 3, misses 2, false alarm 1 (late turn 2), quiet 0.
    assert rates.loc["a", "turns"] == 6
    assert rates.loc["a", "precision"] == pytest.approx(3 / 4)
    assert rates.loc["a", "recall"] == pytest.approx(3 / 5)
    assert rates.loc["a", "miss_rate"] == pytest.approx(2 / 5)
    assert rates.loc["a", "false_alarm_rate"] == pytest.approx(1.0)
    # Source b: 2 false alarms of 5 negative turns, 2 misses, no hit.
    assert rates.loc["b", "false_alarm_rate"] == pytest.approx(2 / 5)
    assert rates.loc["b", "recall"] == pytest.approx(0.0)


def test_turn_error_rates_nan_without_alerts() -> None:
    quiet = turn_outcomes(pd.DataFrame(_turns("q", "c", [(0, False, False, 0.1)])))
    rates = turn_error_rates(quiet, "source")
    assert math.isnan(rates.loc["c", "precision"])
    assert math.isnan(rates.loc["c", "recall"])


def test_conversation_outcomes_each_kind(turns: pd.DataFrame) -> None:
    table = conversation_outcomes(turns).set_index("conversation_id")
    assert table["outcome"].to_dict() == {"caught": "caught", "late": "late",
                                          "missed": "missed", "alarm": "false_alarm",
                                          "quiet": "quiet"}


def test_conversation_outcomes_lead_and_evidence(turns: pd.DataFrame) -> None:
    table = conversation_outcomes(turns).set_index("conversation_id")
    assert table.loc["caught", "lead_turns"] == 2
    assert pd.isna(table.loc["late", "lead_turns"])
    assert table.loc["late", "first_alert_turn"] == 2
    assert table.loc["alarm", "first_alert_source"] == "rule"
    assert table.loc["alarm", "first_alert_evidence"] == "evidence alarm 1"
    assert table.loc["missed", "max_probability"] == pytest.approx(0.3)


def test_conversation_outcomes_position(turns: pd.DataFrame) -> None:
    table = conversation_outcomes(turns).set_index("conversation_id")
    # First dissatisfied turn 2 of 3 sits at 5/6: the late third.
    assert table.loc["caught", "position"] == "late"
    # Never dissatisfied: the first alert (turn 1 of 3, at 1/2) places it.
    assert table.loc["alarm", "position"] == "middle"
    assert pd.isna(table.loc["quiet", "position"])


def test_conversation_outcome_table_rates(turns: pd.DataFrame) -> None:
    table = conversation_outcome_table(conversation_outcomes(turns), "source")
    assert table.loc["a", "catch_rate"] == pytest.approx(1 / 2)
    assert table.loc["b", "catch_rate"] == pytest.approx(0.0)
    assert table.loc["b", "false_alarm_rate"] == pytest.approx(1 / 2)
    assert table["conversations"].sum() == 5


def test_reason_counts_false_alarms(turns: pd.DataFrame) -> None:
    counts = reason_counts(turns, "false_alarm")
    assert counts.to_dict() == {"human_request": 2, "escalation_probability": 1}


def test_reason_counts_rejects_unknown(turns: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown outcome 'alarm'"):
        reason_counts(turns, "alarm")


def test_outcome_examples_most_confident_first(turns: pd.DataFrame) -> None:
    misses = outcome_examples(turns, "miss", n=2)
    assert misses["probability"].tolist() == [0.05, 0.1]
    alarms = outcome_examples(turns, "false_alarm", n=3)
    assert alarms["probability"].iloc[0] == pytest.approx(0.6)


def test_outcome_examples_cuts_text(turns: pd.DataFrame) -> None:
    examples = outcome_examples(turns, "hit", n=1, max_chars=6)
    assert examples["text"].iloc[0] == "messa…"


def test_outcome_examples_rejects_zero(turns: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="n is 0"):
        outcome_examples(turns, "hit", n=0)
