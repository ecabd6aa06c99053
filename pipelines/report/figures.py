"""The report's charts, drawn with matplotlib as SVG data URIs so the page needs no script.

Only fixed names (heads, classes, scorers) reach a chart. Text from the data, such as sources
and conversation ids, stays in the HTML tables, where it is escaped.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.report.content import HeadSection, ReportContent
from pipelines.report.curves import Curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Line style per scorer: the bundle's model is solid, its baseline dashed.
MODEL_STYLE = "-"
BASELINE_STYLE = "--"
# Fixed salt for SVG element ids, so the same numbers give byte-identical reports.
SVG_HASH_SALT = "escalation-report"
PANEL_SIZE = (4.6, 3.9)
MAX_CURVE_POINTS = 400


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Text stays text in the SVG (the viewer's sans-serif font) instead of one path per glyph,
    # which keeps each chart several times smaller and its labels searchable.
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": SVG_HASH_SALT,
                         "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def svg_data_uri(figure: Figure) -> str:
    """Serialise a figure to an SVG `data:` URI and close it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


def ranking_figure(section: HeadSection) -> str | None:
    """Draw the ROC and precision-recall curves of a head and its baseline side by side."""
    curves = section.curves
    if not curves.roc:
        return None
    plt = _pyplot()
    figure, (roc_axes, pr_axes) = plt.subplots(
        1, 2, figsize=(2 * PANEL_SIZE[0], PANEL_SIZE[1]))

    _draw_curves(roc_axes, curves.roc)
    roc_axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    roc_axes.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)",
                 title=f"{section.name}: ROC", xlim=(0, 1), ylim=(0, 1.02))
    _draw_curves(pr_axes, curves.precision_recall)
    pr_axes.set(xlabel="recall", ylabel="precision", title=f"{section.name}: precision-recall",
                xlim=(0, 1), ylim=(0, 1.02))

    for marker, point in zip("os^Dv", curves.points, strict=False):
        label = f"{point.name} @ {point.threshold:.3f}"
        roc_axes.plot(point.false_positive_rate, point.recall, marker, color="black",
                      markerfacecolor="none", label=label)
        pr_axes.plot(point.recall, point.precision, marker, color="black",
                     markerfacecolor="none", label=label)
    roc_axes.legend(loc="lower right", fontsize=7)
    pr_axes.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    return svg_data_uri(figure)


def _draw_curves(axes: Axes, curves: Sequence[Curve]) -> None:
    colours = _colours_by_class(curves)
    for curve in curves:
        style = MODEL_STYLE if curve.name.startswith("model") else BASELINE_STYLE
        sample_indices = _thinned(curve.x.size)
        axes.plot(curve.x[sample_indices], curve.y[sample_indices], linestyle=style,
                  color=colours[curve.name], linewidth=1.3,
                  label=f"{curve.name} (area {curve.area:.3f})")


def _thinned(size: int) -> np.ndarray:
    # Thousands of curve points draw no differently at this size but make each SVG several
    # hundred kilobytes. The areas in the legend come from every point.
    return np.unique(np.linspace(0, size - 1, min(size, MAX_CURVE_POINTS)).astype(int))


def _colours_by_class(curves: Sequence[Curve]) -> dict[str, str]:
    # "model: negative" and "VADER: negative" share a colour so each class reads as a pair;
    # without a class suffix every scorer gets its own colour.
    keys = [curve.name.split(": ", 1)[1] if ": " in curve.name else curve.name
            for curve in curves]
    palette: dict[str, str] = {}
    for key in keys:
        palette.setdefault(key, f"C{len(palette)}")
    return {curve.name: palette[key] for curve, key in zip(curves, keys, strict=True)}


def reliability_figure(sections: Sequence[HeadSection]) -> str | None:
    """Draw one reliability diagram per head, the model beside its baseline."""
    drawn = [section for section in sections if section.reliability]
    if not drawn:
        return None
    plt = _pyplot()
    figure, axes_list = plt.subplots(1, len(drawn), squeeze=False,
                                     figsize=(PANEL_SIZE[0] * len(drawn), PANEL_SIZE[1]))
    for axes, section in zip(axes_list[0], drawn, strict=True):
        axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":",
                  label="perfectly calibrated")
        for index, curve in enumerate(section.reliability):
            style = MODEL_STYLE if curve.name.startswith("model") else BASELINE_STYLE
            axes.plot(curve.mean_probability, curve.observed_rate, linestyle=style,
                      linewidth=1, color=f"C{index}", label=curve.name)
            # A bin of a few samples can sit far off the diagonal by chance, so each marker's
            # area grows with its bin's share of the samples.
            shares = curve.counts / max(int(curve.counts.sum()), 1)
            axes.scatter(curve.mean_probability, curve.observed_rate, s=6 + 400 * shares,
                         color=f"C{index}", alpha=0.7, zorder=3)
        top_label = section.name == "sentiment"
        axes.set(xlabel="mean top-class probability" if top_label
                 else "mean predicted probability",
                 ylabel="share correct" if top_label else "observed positive rate",
                 title=f"{section.name}: reliability", xlim=(0, 1), ylim=(0, 1.02))
        axes.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    return svg_data_uri(figure)


def lead_time_figure(lead_times: dict[str, dict[str, Any]]) -> str | None:
    """Draw the lead-time histograms of the alerts as grouped bars, one group per lead."""
    histograms = {name: {int(lead): count for lead, count in report["histogram"].items()}
                  for name, report in lead_times.items()}
    leads = sorted({lead for histogram in histograms.values() for lead in histogram})
    if not leads:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(2 * PANEL_SIZE[0], PANEL_SIZE[1]))
    width = 0.8 / len(histograms)
    for index, (name, histogram) in enumerate(histograms.items()):
        offsets = [lead + (index - (len(histograms) - 1) / 2) * width for lead in leads]
        axes.bar(offsets, [histogram.get(lead, 0) for lead in leads], width=width,
                 color=f"C{index}", label=f"{name} (missed {lead_times[name]['missed']})")
    axes.set(xlabel="customer turns between the first alert and the first dissatisfied turn",
             ylabel="conversations", title="lead time of the first alert", xticks=leads)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return svg_data_uri(figure)


def sweep_figure(sweep: Sequence[dict[str, Any]]) -> str | None:
    """Draw precision, recall, catch rate and conversation alert rate against the threshold."""
    if not sweep:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(2 * PANEL_SIZE[0], PANEL_SIZE[1]))
    thresholds = [row["threshold"] for row in sweep]
    for key, label in (("precision", "precision per turn"), ("recall", "recall per turn"),
                       ("catch_rate", "catch rate per conversation"),
                       ("alert_rate_conversations", "alert rate per conversation")):
        axes.plot(thresholds, [row[key] for row in sweep], marker=".", label=label)
    for row in sweep:
        for mark in row["marks"]:
            axes.axvline(row["threshold"], color="grey", linestyle=":", linewidth=1)
            axes.annotate(mark, (row["threshold"], 1.0), rotation=90, fontsize=7,
                          va="top", ha="right")
    axes.set(xlabel="escalation threshold", ylabel="rate", xlim=(0, 1), ylim=(0, 1.02),
             title="escalation head across thresholds")
    axes.legend(fontsize=7, loc="center right")
    figure.tight_layout()
    return svg_data_uri(figure)


def draw_charts(content: ReportContent) -> dict[str, Any]:
    """Draw every chart of the report; a chart without data is None."""
    return {
        "ranking": {head.name: ranking_figure(head) for head in content.heads},
        "reliability": reliability_figure(content.heads),
        "lead_time": lead_time_figure(content.lead_times),
        "sweep": sweep_figure(content.sweep),
    }
