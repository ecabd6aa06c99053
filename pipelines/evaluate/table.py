"""Print evaluation results as tables, each model beside its baseline."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

BINARY_COLUMNS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece")
MULTICLASS_COLUMNS = ("macro_f1", "accuracy", "macro_recall", "roc_auc_ovr_macro", "brier", "ece")
BINARY_COLUMNS_WITH_THRESHOLD = ("threshold", *BINARY_COLUMNS)
LEAD_COLUMNS = ("catch_rate", "mean_lead_turns", "false_alarm_rate")


def render_evaluation(metrics: dict[str, Any], console: Console | None = None) -> None:
    """Print one table per task: sentiment, frustration and escalation."""
    # Wide enough for every column, also when the output is a pipe or a log file.
    console = console or Console(stderr=False, width=160)
    if "sentiment" in metrics:
        console.print(_table("Sentiment (3 classes)", metrics["sentiment"], MULTICLASS_COLUMNS))
    if "frustration" in metrics:
        console.print(_table("Frustration", metrics["frustration"], BINARY_COLUMNS))
    escalation = metrics.get("escalation")
    if escalation:
        console.print(_table("Escalation per customer turn", escalation,
                             BINARY_COLUMNS_WITH_THRESHOLD))
        lead = {name: result.get("lead_time", {}) for name, result in escalation.items()
                if isinstance(result, dict)}
        console.print(_table("Lead time before the first rating <= 2", lead, LEAD_COLUMNS))


def _table(title: str, results: dict[str, Any], columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("model", no_wrap=True, min_width=13)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for name, values in results.items():
        if not isinstance(values, dict):
            continue
        table.add_row(name, *(_format(values.get(column)) for column in columns))
    return table


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)
