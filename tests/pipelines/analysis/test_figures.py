"""Tests of pipelines.analysis.figures: what each figure draws, and the binned rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from pipelines.analysis.figures import (
    grouped_histograms,
    probability_histogram,
    rate_by_bin,
    rate_curves,
    share_bars,
    sweep_curves,
)


@pytest.fixture
def rows() -> pd.DataFrame:
    return pd.DataFrame({
        "position": [0.05, 0.15, 0.55, 0.95, 0.99, 0.5],
        "flag": [True, False, True, True, False, False],
        "source": ["a", "a", "a", "b", "b", "b"],
        "probability": [0.1, 0.2, 0.7, 0.9, 0.4, 0.05],
        "outcome": ["quiet", "quiet", "hit", "hit", "miss", "quiet"],
    })


def test_rate_by_bin_values(rows: pd.DataFrame) -> None:
    table = rate_by_bin(rows, "position", "flag", bins=2)
    assert table["rows"].tolist() == [2, 4]
    assert table["rate"].tolist() == pytest.approx([0.5, 0.5])
    assert table["centre"].tolist() == pytest.approx([0.25, 0.75])


def test_rate_by_bin_groups(rows: pd.DataFrame) -> None:
    table = rate_by_bin(rows, "position", "flag", bins=2, group="source")
    rate = table.set_index(["group", "bin"])["rate"]
    assert rate[("a", 0)] == pytest.approx(0.5)
    assert rate[("b", 1)] == pytest.approx(1 / 3)


def test_rate_by_bin_position_one_in_last_bin() -> None:
    table = rate_by_bin(pd.DataFrame({"x": [1.0], "f": [True]}), "x", "f", bins=4)
    assert table["bin"].tolist() == [3]


def test_rate_by_bin_rejects_zero_bins(rows: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="bins is 0"):
        rate_by_bin(rows, "position", "flag", bins=0)


def test_share_bars_one_bar_per_cell() -> None:
    shares = pd.DataFrame({"no": [0.7, 0.4], "yes": [0.3, 0.6]}, index=["train", "test"])
    figure = share_bars(shares, title="balance")
    assert isinstance(figure, Figure)
    assert len(figure.axes[0].patches) == 4
    assert figure.axes[0].get_title() == "balance"


def test_grouped_histograms_one_step_per_group(rows: pd.DataFrame) -> None:
    figure = grouped_histograms(rows, "probability", "source", bins=5, title="t", xlabel="p")
    legend = figure.axes[0].get_legend()
    assert legend is not None
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["a (n=3)", "b (n=3)"]


def test_grouped_histograms_log_scale(rows: pd.DataFrame) -> None:
    figure = grouped_histograms(rows.assign(words=[1, 3, 10, 40, 2, 5]), "words", "source",
                                bins=4, title="t", xlabel="w", log_x=True)
    assert figure.axes[0].get_xscale() == "log"


def test_rate_curves_one_line_per_group(rows: pd.DataFrame) -> None:
    rates = rate_by_bin(rows, "position", "flag", bins=2, group="source")
    figure = rate_curves(rates, title="t", xlabel="x", ylabel="y")
    assert len(figure.axes[0].lines) == 2


def test_probability_histogram_threshold_lines(rows: pd.DataFrame) -> None:
    figure = probability_histogram(rows, thresholds={"escalation": 0.6, "prepare": 0.3},
                                   title="t")
    positions = [np.asarray(line.get_xdata())[0] for line in figure.axes[0].lines]
    assert positions == [0.6, 0.3]


def test_sweep_curves_panels() -> None:
    sweep = pd.DataFrame({"threshold": np.linspace(0, 1, 5), "recall": np.linspace(1, 0, 5),
                          "lead": [3.0, 2.0, 2.0, 1.0, 0.0]})
    figure = sweep_curves(sweep, ["recall"], thresholds={"chosen": 0.5}, title="t",
                          lead_column="lead")
    assert len(figure.axes) == 2
    assert len(figure.axes[0].lines) == 2


def test_sweep_curves_names_missing_column() -> None:
    with pytest.raises(ValueError, match=r"lacks the columns \['precision'\]"):
        sweep_curves(pd.DataFrame({"threshold": [0.5]}), ["precision"], thresholds={},
                     title="t")
