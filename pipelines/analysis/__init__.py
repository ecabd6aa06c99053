"""Analysis helpers behind the notebooks in notebooks/: tables, scoring, error analysis, plots.

Modules:

- `notebook_settings`: the bundle folder and sample size from the environment;
- `labelled_splits`: the rated USS conversations of a stored split;
- `corpus_tables`: per-turn, per-conversation and per-message tables of the corpora;
- `turn_scores`: every customer turn scored by a bundle, with its label and evidence;
- `error_analysis`: false alarms and misses per turn and per conversation;
- `threshold_sweep`: turn-level figures and lead time of a backtest replay across thresholds;
- `figures`: matplotlib plots.

Notebooks import these, so the code that repeats is tested here once.
"""
