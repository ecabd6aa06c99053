# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Threshold tuning on the validation split
#
# The escalation head's probability becomes a decision through two thresholds: at the
# **escalation** threshold the conversation goes to a human, and at the lower **prepare**
# threshold an agent is warned early. This notebook replays the USS validation conversations
# turn by turn through the serving runtime, sweeps both thresholds over the recorded
# probabilities, and picks thresholds for a stated target.
#
# It uses the backtest package (`pipelines/backtest/`, the code behind `escalation backtest`
# and `escalation tune`): `replay_all` replays the conversations, `gold_outcome` reads their
# labels, `threshold_curve` gives the conversation-level escalation rate, precision and recall
# at every threshold, and `choose_escalation` / `choose_prepare` pick the thresholds.
# `pipelines.analysis.threshold_sweep` adds the turn-level figures and the lead time from
# the same replay records.
#
# A conversation needed a human when a customer turn is rated at or below the bundle's
# `dissatisfied_rating`. Rules escalate on their own at every threshold, so no threshold can
# bring the escalation rate below the share of conversations a rule escalates.
#
# **Settings** (environment variables):
#
# - `ESCALATION_BUNDLE`: the bundle folder; unset, the newest bundle under `models/` is used.
# - `ESCALATION_NOTEBOOK_SAMPLE`: how many validation conversations to replay; 0 or unset
#   replays all 200 (104 seconds on a loaded 2-core machine). The test suite sets a smaller sample;
#   the sample is drawn with the training seed.

# %% [markdown]
# ## The target
#
# The escalation threshold is the lowest one at which **at most 20% of conversations
# escalate**, the alert budget `escalation train` uses too
# (`max_conversation_alert_rate` in pipelines/config/train.yaml), so recall is as high as that
# budget allows. The prepare threshold is the highest one, at or below it, at which an agent is
# prepared for, or already handling, **at least 80% of the conversations that needed a human**
# (`prepare_recall`).

# %%
# %matplotlib inline
import numpy as np
import pandas as pd

from pipelines.analysis import figures, threshold_sweep
from pipelines.analysis.labelled_splits import uss_split
from pipelines.analysis.notebook_settings import notebook_bundle, notebook_sample_size
from pipelines.analysis.turn_scores import label_settings
from pipelines.backtest.gold import gold_outcome
from pipelines.backtest.replay import replay_all
from pipelines.backtest.scoring import CachingScorer
from pipelines.backtest.sweep import threshold_curve
from pipelines.backtest.tune import Target, choose_escalation, choose_prepare
from serving.roster import EXAMPLE_ROSTER_PATH, load_roster

pd.set_option("display.width", 160)

MAX_ESCALATION_RATE = 0.2
PREPARE_RECALL = 0.8

bundle = notebook_bundle()
scorer = CachingScorer(bundle)
settings = label_settings(scorer.manifest)
sample_size = notebook_sample_size(default=0)
conversations = uss_split("validation", sample=sample_size)
print(f"bundle {scorer.manifest.name}: escalation threshold {scorer.thresholds.escalation:.4f}, "
      f"prepare {scorer.thresholds.prepare:.4f}")
print(f"validation conversations replayed: {len(conversations)}"
      + (" (sample)" if sample_size else " (all)"))

# %%
run = replay_all(scorer, conversations, load_roster(EXAMPLE_ROSTER_PATH), policy_name="default")
golds = [gold_outcome(conversation, horizon=settings.horizon,
                      dissatisfied_rating=settings.dissatisfied_rating)
         for conversation in conversations]
curve = threshold_curve(run.replays, golds)
turns = threshold_sweep.replay_turn_table(run.replays, golds)
print(f"replayed {len(turns):,} turns in {run.seconds:.1f} s; {curve.positives} of "
      f"{curve.labelled} conversations needed a human")

# %% [markdown]
# ## The sweep
#
# Thresholds from 0 to 1 in steps of 0.01, plus the bundle's own. Conversation-level figures
# come from the backtest curve; turn-level alert rate, precision and recall and the lead time
# come from the same replay.

# %%
grid = np.unique(np.concatenate([
    np.round(np.linspace(0.0, 1.0, 101), 6),
    [scorer.thresholds.escalation, scorer.thresholds.prepare],
]))
sweep = threshold_sweep.curve_at(curve, grid).merge(
    threshold_sweep.sweep_turns(turns, grid), on="threshold", suffixes=("", "_turns"))
columns = ["threshold", "conversation_rate", "conversation_precision", "conversation_recall",
           "catch_rate", "false_alarm_rate", "median_lead_turns", "turn_alert_rate",
           "turn_precision", "turn_recall"]
print(sweep.loc[sweep["threshold"].isin(np.round(np.arange(0.0, 1.0001, 0.1), 6)), columns]
      .round(3).to_string(index=False))

# %% [markdown]
# The backtest curve and the turn table compute the conversation escalation rate separately
# from the same records, so the two must agree at every threshold.

# %%
disagreement = np.abs(sweep["conversation_rate"] - sweep["conversation_rate_turns"]).max()
print(f"largest difference between the two conversation rates: {disagreement:.2e}")
assert disagreement < 1e-12

# %% [markdown]
# ## Thresholds for the target

# %%
escalation = choose_escalation(curve, Target("max_escalation_rate", MAX_ESCALATION_RATE))
prepare = choose_prepare(curve, escalation, PREPARE_RECALL)
chosen = pd.DataFrame([
    {"threshold": "escalation (chosen)", "value": escalation.threshold},
    {"threshold": "prepare (chosen)", "value": prepare.threshold},
    {"threshold": "escalation (bundle)", "value": scorer.thresholds.escalation},
    {"threshold": "prepare (bundle)", "value": scorer.thresholds.prepare},
])
figures_at = threshold_sweep.curve_at(curve, chosen["value"]).drop(columns="threshold").join(
    threshold_sweep.sweep_turns(turns, chosen["value"]).drop(columns=["threshold",
                                                                      "conversation_rate"]))
print(pd.concat([chosen, figures_at], axis=1).round(4).to_string(index=False))


def share(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.1%}"


print(f"\nescalation {escalation.threshold}: {escalation.rate:.1%} of conversations escalate, "
      f"recall {share(escalation.recall)}, precision {share(escalation.precision)}")
print(f"prepare {prepare.threshold}: {share(prepare.recall)} of the conversations that needed "
      "a human are prepared for or escalated")

# %%
figures.sweep_curves(
    sweep,
    ["conversation_rate", "conversation_precision", "conversation_recall", "catch_rate"],
    thresholds={"escalation": escalation.threshold, "prepare": prepare.threshold},
    title=f"Conversation-level sweep on validation ({scorer.manifest.name})",
    lead_column="median_lead_turns",
)

# %%
figures.sweep_curves(
    sweep,
    ["turn_alert_rate", "turn_precision", "turn_recall"],
    thresholds={"escalation": escalation.threshold, "prepare": prepare.threshold},
    title="Turn-level sweep on validation",
)

# %% [markdown]
# ## Applying the thresholds
#
# The thresholds go in the `thresholds` block of the rule policy
# (serving/policies/default.yaml), which overrides the bundle's. `escalation tune` runs the
# same choice on a file of past conversations and writes such a policy copy after replaying
# the data once more under it, for example:
#
# ```bash
# .venv/bin/escalation tune --data past-conversations.jsonl --max-escalation-rate 0.2 \
#     --prepare-recall 0.8 -o var/tuned-policy.yaml
# ```
#
# These figures come from the validation split, which also chose the bundle's thresholds in
# training. Measure the chosen thresholds on the test split (notebook 02) before relying on
# them.
