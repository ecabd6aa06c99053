"""Hits, false alarms and misses of escalation decisions, per customer turn and per conversation.

Works on the table of `pipelines.analysis.turn_scores.score_turns`. A turn alerts when the
serving decision escalates there, whether the model or a rule caused it. Turn outcomes compare
that alert with the training label (dissatisfaction at this turn or within the label horizon).
Conversation outcomes follow `pipelines.evaluate.metrics.lead_times`: a dissatisfied
conversation is caught when an alert comes at or before its first dissatisfied turn.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from pipelines.analysis.corpus_tables import position_bucket, shorten

TURN_OUTCOMES = ("hit", "false_alarm", "miss", "quiet")
CONVERSATION_OUTCOMES = ("caught", "late", "missed", "false_alarm", "quiet")

_REQUIRED_COLUMNS = ("conversation_id", "source", "customer_turn_number", "n_customer_turns",
                     "position", "label", "dissatisfied", "escalate", "probability",
                     "threshold", "alert_source", "evidence", "reasons", "text")


def turn_outcomes(turns: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of a turn-score table with an `outcome` column.

    `hit`: alert on a positive turn, `false_alarm`: alert on a negative turn, `miss`: no alert
    on a positive turn, `quiet`: no alert on a negative turn.
    """
    _require_columns(turns)
    frame = turns.copy()
    positive = frame["label"].astype(bool)
    alert = frame["escalate"].astype(bool)
    frame["outcome"] = np.select(
        [alert & positive, alert & ~positive, ~alert & positive],
        ["hit", "false_alarm", "miss"],
        default="quiet",
    )
    return frame


def turn_error_rates(turns: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Return per group the turn counts of each outcome with precision, recall and error rates.

    `false_alarm_rate` is false alarms over negative turns and `miss_rate` is misses over
    positive turns. A rate whose denominator is 0 is nan.
    """
    frame = turns if "outcome" in turns.columns else turn_outcomes(turns)
    keys = [by] if isinstance(by, str) else list(by)
    counts = pd.crosstab([frame[key] for key in keys], frame["outcome"])
    counts = counts.reindex(columns=list(TURN_OUTCOMES), fill_value=0).rename_axis(columns=None)

    positives = counts["hit"] + counts["miss"]
    negatives = counts["false_alarm"] + counts["quiet"]
    alerts = counts["hit"] + counts["false_alarm"]
    counts.insert(0, "turns", positives + negatives)
    counts["alert_rate"] = _ratio(alerts, positives + negatives)
    counts["precision"] = _ratio(counts["hit"], alerts)
    counts["recall"] = _ratio(counts["hit"], positives)
    counts["false_alarm_rate"] = _ratio(counts["false_alarm"], negatives)
    counts["miss_rate"] = _ratio(counts["miss"], positives)
    return counts


def conversation_outcomes(turns: pd.DataFrame) -> pd.DataFrame:
    """Return one row per conversation with its outcome and the evidence of its first alert.

    Outcomes: `caught` (alert at or before the first dissatisfied turn), `late` (first alert
    after it), `missed` (dissatisfied, never an alert), `false_alarm` (alert, never
    dissatisfied) and `quiet`. `lead_turns` counts customer turns from the first alert to the
    first dissatisfied turn for caught conversations. `position` is the third of the dialogue
    where the first dissatisfied turn falls, or where the first alert falls when the customer
    was never dissatisfied.
    """
    _require_columns(turns)
    rows = [_conversation_row(group) for _, group in turns.groupby("conversation_id", sort=False)]
    frame = pd.DataFrame(rows)
    for column in ("first_dissatisfied_turn", "first_alert_turn", "lead_turns"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _conversation_row(group: pd.DataFrame) -> dict[str, Any]:
    group = group.sort_values("customer_turn_number")
    dissatisfied = group[group["dissatisfied"].astype(bool)]
    alerts = group[group["escalate"].astype(bool)]
    first_bad = int(dissatisfied["customer_turn_number"].iloc[0]) if len(dissatisfied) else None
    first_alert = alerts.iloc[0] if len(alerts) else None
    alert_turn = int(first_alert["customer_turn_number"]) if first_alert is not None else None

    outcome = _conversation_outcome(first_bad, alert_turn)
    lead = None
    if outcome == "caught" and first_bad is not None and alert_turn is not None:
        lead = first_bad - alert_turn
    anchor = first_bad if first_bad is not None else alert_turn
    n_turns = int(group["n_customer_turns"].iloc[0])
    return {
        "conversation_id": group["conversation_id"].iloc[0],
        "source": group["source"].iloc[0],
        "n_customer_turns": n_turns,
        "outcome": outcome,
        "first_dissatisfied_turn": first_bad,
        "first_alert_turn": alert_turn,
        "lead_turns": lead,
        "position": (position_bucket((anchor + 0.5) / n_turns) if anchor is not None
                     else None),
        "max_probability": float(group["probability"].max()),
        "threshold": float(group["threshold"].iloc[0]),
        "first_alert_source": first_alert["alert_source"] if first_alert is not None else None,
        "first_alert_evidence": first_alert["evidence"] if first_alert is not None else None,
    }


def _conversation_outcome(first_dissatisfied: int | None, first_alert: int | None) -> str:
    if first_dissatisfied is None:
        return "quiet" if first_alert is None else "false_alarm"
    if first_alert is None:
        return "missed"
    return "caught" if first_alert <= first_dissatisfied else "late"


def conversation_outcome_table(conversations: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Return per group the number of conversations of each outcome and the headline rates.

    `catch_rate` is caught over dissatisfied conversations (caught, late, missed), and
    `false_alarm_rate` is false alarms over conversations never dissatisfied.
    """
    keys = [by] if isinstance(by, str) else list(by)
    counts = pd.crosstab([conversations[key] for key in keys], conversations["outcome"])
    counts = counts.reindex(columns=list(CONVERSATION_OUTCOMES), fill_value=0)
    counts = counts.rename_axis(columns=None)

    dissatisfied = counts["caught"] + counts["late"] + counts["missed"]
    satisfied = counts["false_alarm"] + counts["quiet"]
    counts.insert(0, "conversations", dissatisfied + satisfied)
    counts["catch_rate"] = _ratio(counts["caught"], dissatisfied)
    counts["false_alarm_rate"] = _ratio(counts["false_alarm"], satisfied)
    return counts


def reason_counts(turns: pd.DataFrame, outcome: str) -> pd.Series:
    """Count the reason codes (rule ids or the model) behind the alerts of one turn outcome.

    A turn with several reasons counts once for each, so the counts can exceed the turns.
    """
    if outcome not in TURN_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; use one of {', '.join(TURN_OUTCOMES)}")

    frame = turns if "outcome" in turns.columns else turn_outcomes(turns)
    counter: Counter[str] = Counter()
    for reasons in frame.loc[frame["outcome"] == outcome, "reasons"]:
        counter.update(reason["code"] for reason in reasons)
    return pd.Series(dict(counter.most_common()), name="turns", dtype="int64")


def outcome_examples(
    turns: pd.DataFrame, outcome: str, *, n: int = 5, max_chars: int = 140
) -> pd.DataFrame:
    """Return up to `n` turns of one outcome with their evidence, the most confident errors first.

    False alarms and hits come in order of falling probability, misses and quiet turns in
    order of rising probability, so the first rows are the cases the model was surest about.
    """
    if outcome not in TURN_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; use one of {', '.join(TURN_OUTCOMES)}")
    if n < 1:
        raise ValueError(f"n is {n}; pass a positive number of examples")

    frame = turns if "outcome" in turns.columns else turn_outcomes(turns)
    selected = frame[frame["outcome"] == outcome]
    selected = selected.sort_values("probability", ascending=outcome in ("miss", "quiet"))
    columns = ["conversation_id", "source", "customer_turn_number", "position", "satisfaction",
               "label", "probability", "threshold", "frustration", "sentiment_negative",
               "alert_source", "evidence", "text"]
    examples = selected.head(n)[columns].reset_index(drop=True)
    examples["text"] = examples["text"].map(lambda text: shorten(text, max_chars))
    return examples


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return numerator.div(denominator.where(denominator > 0))


def _require_columns(turns: pd.DataFrame) -> None:
    missing = [column for column in _REQUIRED_COLUMNS if column not in turns.columns]
    if missing:
        raise ValueError(f"the turn table lacks the columns {missing}; build it with "
                         "pipelines.analysis.turn_scores.score_turns")
