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
# # Error analysis of the escalation decisions on the test split
#
# This notebook scores the USS test conversations turn by turn with a model bundle through
# `serving.scorer.Scorer`, the code the service runs, and studies where its decisions go wrong:
#
# - **false alarm**: the decision escalates at a customer turn whose label is negative;
# - **miss**: the decision does not escalate at a turn whose label is positive.
#
# A turn's label is positive when the customer is dissatisfied (rating at or below the
# bundle's `dissatisfied_rating`) at that turn or within the next `horizon` customer turns,
# the label the escalation head was trained on. A decision escalates when the model's
# probability crosses the escalation threshold or a rule of the policy fires. Each error
# therefore comes with its evidence: the decision's reasons with the rule matches, the
# probability beside the threshold, and the sentiment and frustration signals.
#
# **Settings** (environment variables):
#
# - `ESCALATION_BUNDLE`: the bundle folder; unset, the newest bundle under `models/` is used.
# - `ESCALATION_NOTEBOOK_SAMPLE`: how many test conversations to score; 0 or unset scores all
#   200 (73 seconds on a loaded 2-core machine). The test suite sets a smaller sample so
#   the notebook runs quickly; the sample is drawn with the training seed.

# %%
# %matplotlib inline
import pandas as pd

from pipelines.analysis import error_analysis, figures
from pipelines.analysis.labelled_splits import uss_split
from pipelines.analysis.notebook_settings import notebook_bundle, notebook_sample_size
from pipelines.analysis.turn_scores import label_settings, score_turns
from serving.scorer import Scorer

pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 120)

bundle = notebook_bundle()
scorer = Scorer(bundle)
settings = label_settings(scorer.manifest)
sample_size = notebook_sample_size(default=0)
conversations = uss_split("test", sample=sample_size)

print(f"bundle {scorer.manifest.name} ({bundle})")
print(f"thresholds: escalation {scorer.thresholds.escalation:.3f}, "
      f"prepare {scorer.thresholds.prepare:.3f}")
print(f"labels: dissatisfied at rating <= {settings.dissatisfied_rating}, "
      f"horizon {settings.horizon} customer turns")
print(f"test conversations scored: {len(conversations)}"
      + (" (sample)" if sample_size else " (all)"))

# %%
turns = error_analysis.turn_outcomes(score_turns(conversations, scorer, settings))
by_conversation = error_analysis.conversation_outcomes(turns)
print(f"{len(turns):,} customer turns, {turns['label'].mean():.1%} positive, "
      f"{turns['escalate'].mean():.1%} escalated")

# %% [markdown]
# ## Overall
#
# Turn outcomes with precision and recall of the decision, then conversation outcomes: a
# dissatisfied conversation is *caught* when the first alert comes at or before its first
# dissatisfied turn, and *late* when it comes after.

# %%
turns["all"] = "all"
by_conversation["all"] = "all"
print(error_analysis.turn_error_rates(turns, "all").round(3).to_string())
print()
print(error_analysis.conversation_outcome_table(by_conversation, "all").round(3).to_string())
caught = by_conversation[by_conversation["outcome"] == "caught"]
print(f"\nmedian lead of caught conversations: {caught['lead_turns'].median()} customer turns")

# %% [markdown]
# ## What raised the alerts
#
# Which part of the decision escalated: the model alone, a rule alone, or both. Rule alerts
# persist: once a rule fires, every later turn of the conversation escalates until a human
# handles the cause. Then the reason codes behind false alarms and behind hits.

# %%
print(pd.crosstab(turns["alert_source"], turns["outcome"], margins=True).to_string())
print("\nreasons behind false alarms (turns):")
print(error_analysis.reason_counts(turns, "false_alarm").to_string())
print("\nreasons behind hits (turns):")
print(error_analysis.reason_counts(turns, "hit").to_string())

# %% [markdown]
# ## By source
#
# MultiWOZ and SGD dialogues differ in domain and length, so the error rates are shown per
# source, per turn and per conversation.

# %%
print(error_analysis.turn_error_rates(turns, "source").round(3).to_string())
print()
print(error_analysis.conversation_outcome_table(by_conversation, "source").round(3).to_string())

# %% [markdown]
# ## By position in the dialogue
#
# Turns grouped by the third of the dialogue they fall in (early, middle, late). Dissatisfied
# conversations are grouped by where their first dissatisfied turn falls, and false alarms by
# where their first alert falls.

# %%
position_order = ["early", "middle", "late"]
print(error_analysis.turn_error_rates(turns, "position").reindex(position_order)
      .round(3).to_string())
print()
dissatisfied = by_conversation[by_conversation["outcome"].isin(["caught", "late", "missed"])]
print(error_analysis.conversation_outcome_table(dissatisfied, "position")
      .reindex(position_order)[["conversations", "caught", "late", "missed", "catch_rate"]]
      .round(3).to_string())
print("\nfalse-alarm conversations by position of the first alert:")
print(by_conversation.loc[by_conversation["outcome"] == "false_alarm", "position"]
      .value_counts().reindex(position_order, fill_value=0).to_string())

# %%
error_kind = turns["label"].map({1: "miss rate (positive turns)",
                                  0: "false alarm rate (negative turns)"})
figures.rate_curves(
    figures.rate_by_bin(
        turns.assign(error=turns["outcome"].isin(["false_alarm", "miss"]), kind=error_kind),
        "relative_position", "error", bins=5, group="kind"),
    title="Turn error rates by position in the dialogue",
    xlabel="position in the dialogue (0 start, 1 end)", ylabel="share of turns in error",
)

# %% [markdown]
# ## Probabilities of each outcome
#
# The escalation probability of every turn by outcome, with the escalation and prepare
# thresholds. A false alarm left of the escalation threshold was raised by a rule. No miss
# lies right of it, because a probability at or above the threshold always escalates.

# %%
figures.probability_histogram(
    turns,
    thresholds={"escalation": scorer.thresholds.escalation,
                "prepare": scorer.thresholds.prepare},
    title=f"Escalation probability per turn outcome ({scorer.manifest.name})",
)

# %% [markdown]
# ## False alarms with their evidence
#
# The false alarms the model was surest about: the customer message (cut to 140 characters),
# its rating and label, the probability beside the threshold, the frustration and negative
# sentiment signals, and the decision's reasons with their evidence.

# %%
false_alarms = error_analysis.outcome_examples(turns, "false_alarm", n=5)
print(false_alarms.drop(columns=["text", "evidence"]).round(3).to_string())
for row in false_alarms.itertuples():
    print(f"\n{row.conversation_id} customer turn {row.customer_turn_number}: {row.text!r}")
    print(f"  evidence: {row.evidence}")

# %% [markdown]
# ## Misses with their evidence
#
# The misses with the lowest probability: positive turns where the model saw little risk and
# no rule fired. The evidence line gives the probability against both thresholds. A miss rated
# 3 is positive because a dissatisfied turn follows within the label horizon.

# %%
misses = error_analysis.outcome_examples(turns, "miss", n=5)
print(misses.drop(columns=["text", "evidence"]).round(3).to_string())
for row in misses.itertuples():
    print(f"\n{row.conversation_id} customer turn {row.customer_turn_number}: {row.text!r}")
    print(f"  evidence: {row.evidence}")

# %% [markdown]
# ## Missed and falsely alerted conversations
#
# Per conversation: the highest probability reached against the threshold for missed and late
# ones, and the first alert's evidence for false alarms. `first_dissatisfied_turn` and
# `first_alert_turn` count customer turns from 0, while the evidence names the turn index in
# the whole conversation (customer and assistant turns).

# %%
missed = by_conversation[by_conversation["outcome"].isin(["missed", "late"])]
print(missed[["conversation_id", "source", "outcome", "n_customer_turns",
              "first_dissatisfied_turn", "first_alert_turn", "max_probability", "threshold"]]
      .sort_values("max_probability").head(10).round(3).to_string(index=False))
print()
alarmed = by_conversation[by_conversation["outcome"] == "false_alarm"]
print(alarmed[["conversation_id", "source", "first_alert_turn", "first_alert_source",
               "first_alert_evidence"]].head(10).to_string(index=False))
