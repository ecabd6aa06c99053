"""Matplotlib figures shared by the notebooks: shares, histograms, rates by position, sweeps.

Each function builds a `matplotlib.figure.Figure` without pyplot, so no global figure state is
left behind and a notebook shows the figure once, as the value of its cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

DEFAULT_SIZE = (8.0, 4.0)


def share_bars(shares: pd.DataFrame, *, title: str, xlabel: str = "share") -> Figure:
    """Draw one horizontal stacked bar per row of `shares`, whose columns sum to 1 per row."""
    figure = Figure(figsize=(DEFAULT_SIZE[0], 0.5 * len(shares) + 1.5))
    axes = figure.subplots()
    labels = [" / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
              for key in shares.index]
    left = np.zeros(len(shares))
    for column in shares.columns:
        values = shares[column].to_numpy(dtype=float)
        axes.barh(labels, values, left=left, label=str(column))
        left += values

    axes.set_xlim(0, 1)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.invert_yaxis()
    # Below the axes, so the legend never covers a bar.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(shares.columns),
                fontsize="small", frameon=False)
    figure.tight_layout()
    return figure


def grouped_histograms(
    frame: pd.DataFrame,
    value: str,
    group: str,
    *,
    bins: int | Sequence[float] = 30,
    title: str,
    xlabel: str,
    log_x: bool = False,
) -> Figure:
    """Draw the normalised histogram of `value` for each group of `group`, as overlaid steps."""
    figure = Figure(figsize=DEFAULT_SIZE)
    axes = figure.subplots()
    data = frame[[value, group]].dropna()
    edges = _edges(data[value].to_numpy(dtype=float), bins, log_x)
    for name, rows in data.groupby(group, sort=True):
        axes.hist(rows[value].to_numpy(dtype=float), bins=edges.tolist(), density=True,
                  histtype="step", linewidth=1.5, label=f"{name} (n={len(rows)})")

    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _edges(values: np.ndarray, bins: int | Sequence[float], log_x: bool) -> np.ndarray:
    if not isinstance(bins, int):
        return np.asarray(bins, dtype=float)
    if values.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    low, high = float(values.min()), float(values.max())
    if log_x:
        # Log bins need a positive start; empty texts (0 characters) fall below the first edge.
        return np.geomspace(max(low, 1.0), max(high, 2.0), bins + 1)
    return np.linspace(low, high if high > low else low + 1.0, bins + 1)


def rate_by_bin(
    frame: pd.DataFrame, x: str, flag: str, *, bins: int = 10, group: str | None = None
) -> pd.DataFrame:
    """Return the share of rows where `flag` is true in equal-width bins of `x` over [0, 1].

    One row per (group, bin) with the bin centre, the row count and the rate; `group` None
    gives one group named `all`.
    """
    if bins < 1:
        raise ValueError(f"bins is {bins}; pass a positive number of bins")

    data = frame[[x, flag] + ([group] if group else [])].dropna().copy()
    data["bin"] = np.clip((data[x].to_numpy(dtype=float) * bins).astype(int), 0, bins - 1)
    data["group"] = data[group] if group else "all"
    data["flag"] = data[flag].astype(bool)
    table = data.groupby(["group", "bin"]).agg(rows=("flag", "size"), rate=("flag", "mean"))
    table = table.reset_index()
    table["centre"] = (table["bin"] + 0.5) / bins
    return table[["group", "bin", "centre", "rows", "rate"]]


def rate_curves(rates: pd.DataFrame, *, title: str, xlabel: str, ylabel: str) -> Figure:
    """Draw each group's rate against the bin centre, from a `rate_by_bin` table."""
    figure = Figure(figsize=DEFAULT_SIZE)
    axes = figure.subplots()
    for name, rows in rates.groupby("group", sort=True):
        axes.plot(rows["centre"], rows["rate"], marker="o", label=str(name))

    axes.set_xlim(0, 1)
    axes.set_ylim(bottom=0)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def probability_histogram(
    turns: pd.DataFrame, *, thresholds: Mapping[str, float], title: str, group: str = "outcome"
) -> Figure:
    """Draw the escalation probability per group of `group`, with each threshold as a line."""
    figure = Figure(figsize=DEFAULT_SIZE)
    axes = figure.subplots()
    edges = np.linspace(0.0, 1.0, 41).tolist()
    for name, rows in turns.groupby(group, sort=True):
        axes.hist(rows["probability"].to_numpy(dtype=float), bins=edges, histtype="step",
                  linewidth=1.5, label=f"{name} (n={len(rows)})")
    _threshold_lines(axes, thresholds)

    axes.set_yscale("log")
    axes.set_xlabel("escalation probability")
    axes.set_ylabel("customer turns")
    axes.set_title(title)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def sweep_curves(
    sweep: pd.DataFrame,
    metrics: Sequence[str],
    *,
    thresholds: Mapping[str, float],
    title: str,
    lead_column: str | None = None,
) -> Figure:
    """Draw metrics of a threshold sweep against the threshold, marking chosen thresholds.

    `sweep` has a `threshold` column and one column per metric, each a rate in [0, 1].
    `lead_column`, when given, goes on a second panel because it counts turns.
    """
    missing = [name for name in ["threshold", *metrics, *([lead_column] if lead_column else [])]
               if name not in sweep.columns]
    if missing:
        raise ValueError(f"the sweep lacks the columns {missing}; it has {list(sweep.columns)}")

    panels = 2 if lead_column else 1
    figure = Figure(figsize=(DEFAULT_SIZE[0], DEFAULT_SIZE[1] * panels))
    axes_list = np.atleast_1d(figure.subplots(panels, 1, sharex=True))
    rates = axes_list[0]
    for metric in metrics:
        rates.plot(sweep["threshold"], sweep[metric], label=metric)
    _threshold_lines(rates, thresholds)
    rates.set_ylim(0, 1.02)
    rates.set_ylabel("rate")
    rates.set_title(title)
    rates.legend(fontsize="small")

    if lead_column:
        lead = axes_list[1]
        lead.plot(sweep["threshold"], sweep[lead_column], color="black", label=lead_column)
        _threshold_lines(lead, thresholds)
        lead.set_ylabel("customer turns")
        lead.legend(fontsize="small")
    axes_list[-1].set_xlabel("escalation probability threshold")
    figure.tight_layout()
    return figure


def _threshold_lines(axes: Axes, thresholds: Mapping[str, float]) -> None:
    styles = ["--", ":", "-.", (0, (5, 1))]
    for position, (name, value) in enumerate(thresholds.items()):
        axes.axvline(value, color="grey", linestyle=styles[position % len(styles)],
                     label=f"{name} {value:.3f}")
