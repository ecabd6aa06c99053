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
# # Data exploration: the bundled corpora
#
# The repository bundles two corpora (data/README.md documents both):
#
# - **USS** (User Satisfaction Simulation, Sun et al., SIGIR 2021): 1,000 MultiWOZ and 1,000
#   SGD task-oriented dialogues, each customer turn rated 1-5 for satisfaction by annotators.
#   A rating of 1 or 2 is the dissatisfaction signal that trains the escalation head.
#   Split by conversation (data/splits/uss.json, 80/10/10).
# - **GoEmotions** (Demszky et al., ACL 2020): 54,263 Reddit comments with emotion labels,
#   mapped to sentiment and frustration. They train the sentiment and frustration heads.
#
# This notebook reads both in full (about 10 seconds) and shows their sizes, label balance,
# turns per conversation, where dissatisfaction falls in a dialogue, message lengths and a
# few short examples. It needs no model bundle.

# %%
# %matplotlib inline
import pandas as pd

from pipelines.analysis import corpus_tables, figures
from pipelines.train.config import load_train_config
from pipelines.train.data import load_training_data
from pipelines.train.labels import escalation_labels

pd.set_option("display.width", 140)
pd.set_option("display.max_colwidth", 90)

config = load_train_config()
DISSATISFIED_RATING = config.escalation.dissatisfied_rating
HORIZON = config.escalation.horizon
data = load_training_data(seed=config.seed)

turns = corpus_tables.turn_table(data.conversations, dissatisfied_rating=DISSATISFIED_RATING)
conversations = corpus_tables.conversation_table(turns)
customer_turns = turns[turns["role"] == "customer"]
messages = corpus_tables.message_label_table(data.messages)

# %% [markdown]
# ## Sizes
#
# USS per split and source (`uss-mwoz`, `uss-sgd`), then GoEmotions per split. GoEmotions'
# official `dev` split plays the validation role.

# %%
uss_sizes = conversations.groupby(["split", "source"], sort=False).agg(
    conversations=("conversation_id", "size"),
    turns=("n_turns", "sum"),
    customer_turns=("n_customer_turns", "sum"),
)
print(uss_sizes.to_string())
print(f"\nUSS in total: {len(conversations):,} conversations, {len(turns):,} turns, "
      f"{len(customer_turns):,} customer turns")
print(f"GoEmotions messages per split: {messages.groupby('split', sort=False).size().to_dict()}")

# %% [markdown]
# ## Label balance
#
# Customer-turn satisfaction ratings per source: most turns are rated 3 (normal), and
# dissatisfaction (1 or 2) is rare per turn. Per conversation it is common, because one
# dissatisfied turn in a long dialogue is enough.

# %%
rating_shares = corpus_tables.share_table(customer_turns, "source", "satisfaction")
print(rating_shares.round(4).to_string())

dissatisfied_turn_rate = customer_turns["dissatisfied"].astype(bool).mean()
dissatisfied_conversation_rate = conversations["dissatisfied"].mean()
print(f"\ndissatisfied customer turns (rating <= {DISSATISFIED_RATING}): "
      f"{dissatisfied_turn_rate:.1%}")
print(f"conversations with at least one dissatisfied turn: {dissatisfied_conversation_rate:.1%}")

# %%
conversation_balance = corpus_tables.share_table(conversations, ["split", "source"],
                                                 "dissatisfied")
print(conversation_balance.round(3).to_string())
figures.share_bars(
    conversation_balance[["False_share", "True_share"]].rename(
        columns={"False_share": "never dissatisfied", "True_share": "dissatisfied"}),
    title="USS conversations with a dissatisfied turn, per split and source",
)

# %% [markdown]
# The escalation head learns a look-ahead label: a customer turn is positive when it or one of
# the next `horizon` customer turns is dissatisfied (pipelines/config/train.yaml). The positive
# rate per split:

# %%
label_rates = {
    split: sum(sum(escalation_labels(conversation, horizon=HORIZON,
                                     dissatisfied_rating=DISSATISFIED_RATING))
               for conversation in rows) / sum(len(conversation.customer_turn_indices())
                                               for conversation in rows)
    for split, rows in data.conversations.items()
}
print(f"escalation label (horizon {HORIZON}) positive rate per split: "
      + ", ".join(f"{split} {rate:.1%}" for split, rate in label_rates.items()))

# %%
sentiment_balance = corpus_tables.share_table(messages, "split", "sentiment")
frustration_balance = corpus_tables.share_table(messages, "split", "frustration")
print(sentiment_balance.round(3).to_string())
print()
print(frustration_balance.round(3).to_string())
figures.share_bars(
    sentiment_balance[["negative_share", "neutral_share", "positive_share"]],
    title="GoEmotions sentiment per split",
)

# %% [markdown]
# ## Turns per conversation
#
# Customer turns per conversation, per source. SGD dialogues run longer than MultiWOZ ones.

# %%
print(conversations.groupby("source")["n_customer_turns"].describe().round(1).to_string())
figures.grouped_histograms(conversations, "n_customer_turns", "source", bins=25,
                           title="Customer turns per conversation", xlabel="customer turns")

# %% [markdown]
# ## Where dissatisfaction falls in a dialogue
#
# The position of a customer turn runs from 0 (start) to 1 (end). The first curve is the share
# of dissatisfied customer turns in each tenth of the dialogue. The histogram shows where the
# first dissatisfied turn of each dissatisfied conversation sits.

# %%
position_rates = figures.rate_by_bin(customer_turns, "relative_position", "dissatisfied",
                                     bins=10, group="source")
print(position_rates.pivot(index="centre", columns="group", values="rate").round(3).to_string())
figures.rate_curves(position_rates, title="Dissatisfied customer turns by position",
                    xlabel="position in the dialogue (0 start, 1 end)",
                    ylabel="share dissatisfied")

# %%
first = conversations[conversations["dissatisfied"]]
print(first.groupby("source")[["first_dissatisfied_turn", "first_dissatisfied_position"]]
      .median().round(2).to_string())
print("\nfirst dissatisfied turn by third of the dialogue:")
print(first["first_dissatisfied_position"].map(corpus_tables.position_bucket)
      .value_counts(normalize=True).reindex(list(corpus_tables.POSITION_BUCKETS))
      .round(3).to_string())
figures.grouped_histograms(first, "first_dissatisfied_position", "source",
                           bins=[step / 10 for step in range(11)],
                           title="Position of the first dissatisfied turn",
                           xlabel="position in the dialogue (0 start, 1 end)")

# %% [markdown]
# ## Message lengths
#
# Words per message for USS customer and assistant turns and for GoEmotions comments. The
# escalation head is trained on USS customer turns, while the sentiment and frustration heads
# are trained on GoEmotions comments. Compare the lengths to see how far apart the two are.

# %%
lengths = pd.concat([
    turns[["role", "words", "chars"]].assign(corpus="uss " + turns["role"]),
    messages[["words", "chars"]].assign(corpus="goemotions"),
], ignore_index=True)
print(lengths.groupby("corpus")[["words", "chars"]].describe()
      .loc[:, (slice(None), ["mean", "50%", "max"])].round(1).to_string())
figures.grouped_histograms(lengths, "words", "corpus", bins=30, log_x=True,
                           title="Words per message", xlabel="words (log scale)")

# %% [markdown]
# ## Examples
#
# Three dissatisfied USS customer turns with the assistant turn before them, then three short
# GoEmotions comments labelled as frustration. Texts are cut to 120 characters.

# %%
dissatisfied_rows = customer_turns[customer_turns["dissatisfied"].astype(bool)]
print(corpus_tables.examples_with_context(
    turns, dissatisfied_rows.sample(3, random_state=config.seed), max_chars=120
)[["conversation_id", "satisfaction", "previous_text", "text"]].to_string(index=False))

# %%
frustrated = messages[messages["frustration"].astype(bool) & (messages["words"] <= 15)]
print(frustrated.sample(3, random_state=config.seed)[["conversation_id", "sentiment", "text"]]
      .to_string(index=False))
