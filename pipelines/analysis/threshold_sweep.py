"""Turn-level and lead-time figures of a backtest replay across escalation thresholds.

`pipelines.backtest.sweep.threshold_curve` gives the conversation-level escalation rate,
precision and recall. This module adds, from the same replay records and without scoring again,
what a threshold does per customer turn (alert rate, precision, recall) and how early it warns
(catch rate and lead in customer turns before the first dissatisfied turn).

At threshold t a turn escalates when a rule has fired at or before it or its latest
probability is >= t, which is `serving.decision.decide` for a replay without hand-backs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipelines.backtest.gold import GoldOutcome
from pipelines.backtest.replay import ConversationReplay
from pipelines.backtest.sweep import ThresholdCurve
from serving.tiers import Tier

CUSTOMER_ROLE = "customer"


def replay_turn_table(
    replays: Sequence[ConversationReplay], golds: Sequence[GoldOutcome | None]
) -> pd.DataFrame:
    """Return one row per replayed turn of every labelled conversation.

    Columns: conversation_id, turn_index, role, customer_turns_so_far (customer turns at or
    before this turn), probability, rule_fired (a rule fired at or before this turn), label and
    first_dissatisfied. `label` is the gold turn label, missing on unlabelled turns.
    `first_dissatisfied` is the turn index of the first dissatisfied turn, missing when the
    conversation never needed a human. Conversations without a gold outcome are left out.
    """
    if len(replays) != len(golds):
        raise ValueError(f"{len(golds)} gold outcomes for {len(replays)} replays; pass one "
                         "outcome (or None) per replayed conversation")

    rows: list[dict[str, Any]] = []
    for replay, gold in zip(replays, golds, strict=True):
        if gold is None:
            continue
        first_dissatisfied = gold.window[1] if gold.escalated and gold.window else None
        customer_turns = 0
        for record in replay.turns:
            customer_turns += record.role == CUSTOMER_ROLE
            rows.append({
                "conversation_id": replay.conversation_id,
                "turn_index": record.turn_index,
                "role": record.role,
                "customer_turns_so_far": customer_turns,
                "probability": record.probability,
                "rule_fired": record.rule_tier is not Tier.NONE,
                "label": gold.turn_labels.get(record.turn_index),
                "first_dissatisfied": first_dissatisfied,
            })

    frame = pd.DataFrame(rows, columns=["conversation_id", "turn_index", "role",
                                        "customer_turns_so_far", "probability", "rule_fired",
                                        "label", "first_dissatisfied"])
    frame["label"] = frame["label"].astype("boolean")
    frame["first_dissatisfied"] = frame["first_dissatisfied"].astype("Int64")
    return frame


def sweep_turns(turns: pd.DataFrame, thresholds: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """Return, per threshold, turn-level and conversation-level alert figures and lead times.

    Turn-level columns count labelled customer turns: `turn_alert_rate`, `turn_precision`,
    `turn_recall`. Conversation-level columns:

    - `conversation_rate`: the share escalated at any turn;
    - `catch_rate`: of the conversations that needed a human, the share escalated at or
      before the first dissatisfied turn;
    - `false_alarm_rate`: of the other conversations, the share escalated;
    - `mean_lead_turns`, `median_lead_turns`: customer turns from the first escalation to the
      first dissatisfied turn, over caught conversations.

    Undefined values are nan.
    """
    values = np.asarray(thresholds, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"thresholds must be a non-empty list of values in [0, 1], got "
                         f"{list(np.atleast_1d(values))[:5]}...")

    conversations = _conversation_table(turns)
    rows = [{"threshold": float(value), **_turn_figures(turns, value),
             **_conversation_figures(turns, conversations, value)} for value in values]
    return pd.DataFrame(rows)


def _alerts(turns: pd.DataFrame, threshold: float) -> pd.Series:
    return turns["rule_fired"] | (turns["probability"] >= threshold)


def _turn_figures(turns: pd.DataFrame, threshold: float) -> dict[str, float]:
    labelled = turns[(turns["role"] == CUSTOMER_ROLE) & turns["label"].notna()]
    alert = _alerts(labelled, threshold).to_numpy(dtype=bool)
    positive = labelled["label"].to_numpy(dtype=bool)
    hits = int((alert & positive).sum())
    return {
        "turn_alert_rate": _ratio(int(alert.sum()), len(alert)),
        "turn_precision": _ratio(hits, int(alert.sum())),
        "turn_recall": _ratio(hits, int(positive.sum())),
    }


def _conversation_table(turns: pd.DataFrame) -> pd.DataFrame:
    """Index conversations by id with their first dissatisfied turn and the customer turns up
    to it."""
    first_bad = turns.groupby("conversation_id", sort=False)["first_dissatisfied"].first()
    at_bad = turns[turns["turn_index"] == turns["first_dissatisfied"]]
    bad_number = at_bad.set_index("conversation_id")["customer_turns_so_far"]
    return pd.DataFrame({"first_dissatisfied": first_bad,
                         "dissatisfied_number": bad_number.reindex(first_bad.index)})


def _conversation_figures(
    turns: pd.DataFrame, conversations: pd.DataFrame, threshold: float
) -> dict[str, float]:
    alert = _alerts(turns, threshold)
    first_alert = (turns[alert].groupby("conversation_id", sort=False)
                   [["turn_index", "customer_turns_so_far"]].first())
    joined = conversations.join(first_alert, how="left")
    escalated = joined["turn_index"].notna()
    needed = joined["first_dissatisfied"].notna()
    caught = needed & escalated & (joined["turn_index"] <= joined["first_dissatisfied"])
    # Both counts include their own turn, so an alert on the dissatisfied turn leads by 0.
    leads = (joined["dissatisfied_number"] - joined["customer_turns_so_far"])[caught]

    return {
        "conversation_rate": _ratio(int(escalated.sum()), len(joined)),
        "catch_rate": _ratio(int(caught.sum()), int(needed.sum())),
        "false_alarm_rate": _ratio(int((escalated & ~needed).sum()), int((~needed).sum())),
        "mean_lead_turns": float(leads.mean()) if len(leads) else float("nan"),
        "median_lead_turns": float(leads.median()) if len(leads) else float("nan"),
    }


def curve_at(curve: ThresholdCurve, thresholds: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """Return a backtest threshold curve's figures at given thresholds, as a table.

    The curve lists the thresholds at which the escalated conversations change. Any threshold
    in (curve.thresholds[i - 1], curve.thresholds[i]] escalates the same conversations as
    curve.thresholds[i], so each requested threshold takes the figures of that point.
    """
    values = np.asarray(thresholds, dtype=float)
    index = np.searchsorted(curve.thresholds, values, side="left")
    if np.any(index >= len(curve.thresholds)):
        raise ValueError(f"thresholds above the curve's last point {curve.thresholds[-1]} "
                         "have no figures; pass values in [0, 1]")
    return pd.DataFrame({
        "threshold": values,
        "conversation_rate": curve.rate[index],
        "conversation_precision": curve.precision[index],
        "conversation_recall": curve.recall[index],
    })


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")
