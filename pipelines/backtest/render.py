"""Print backtest and tuning results as tables, the baseline beside the candidate."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.backtest.metrics import GT_TOLERANCES, TIER_ORDER

# (section, key, label) of each row in the comparison table.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("escalation", "conversation_rate", "escalation rate (conversations)"),
    ("escalation", "turn_rate", "escalation rate (turns)"),
    ("escalation", "handoffs", "handoffs"),
    ("quality", "precision", "precision (conversations)"),
    ("quality", "recall", "recall (conversations)"),
    ("quality", "f1", "F1 (conversations)"),
    ("turn_quality", "precision", "precision (labelled turns)"),
    ("turn_quality", "recall", "recall (labelled turns)"),
    ("timing", "premature", "premature handoffs"),
    ("timing", "on_time", "on-time handoffs"),
    ("timing", "late", "late handoffs"),
    ("timing", "mean_lead_turns", "mean lead (turns)"),
    ("timing", "median_lead_seconds", "median lead (seconds)"),
    *(("gt_t", f"t{tolerance}", f"GT-T, t = {tolerance}") for tolerance in GT_TOLERANCES),
)


def render_backtest(report: dict[str, Any], console: Console | None = None) -> None:
    """Print the comparison, the agent load per team and the number of changed decisions."""
    console = console or Console(width=120)
    baseline, candidate = report["baseline"], report["candidate"]
    console.print(_comparison(baseline, candidate))
    console.print(_load_table(baseline, candidate))

    data = report["data"]
    console.print(f"data: {data['path']} ({data['conversations']} conversations, "
                  f"{data['labelled']} labelled)")
    console.print(f"conversations whose decision changed: {report['changed_conversations']}")
    console.print(f"messages encoded: {report['encoded_messages']}; "
                  f"finished in {report['seconds']:.1f} s")


def render_tuning(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the chosen thresholds with the figures that justify them."""
    console = console or Console(width=120)
    table = Table(title=f"Thresholds for: {summary['target']['kind']} "
                  f"{summary['target']['value']:g}", title_justify="left")
    for column in ("threshold", "value", "rate", "precision", "recall"):
        table.add_column(column, justify="right" if column != "threshold" else "left")
    for name in ("escalation", "prepare"):
        figures = summary[name]
        table.add_row(name, _format(figures["threshold"]), _format(figures["conversation_rate"]),
                      _format(figures["precision"]), _format(figures["recall"]))
    console.print(table)

    replayed = summary["replayed"]
    console.print(f"replayed under the tuned policy: escalation rate "
                  f"{_format(replayed['conversation_rate'])}, precision "
                  f"{_format(replayed['precision'])}, recall {_format(replayed['recall'])}")
    console.print(f"policy written to {summary['output']} (bundle {summary['bundle']}); "
                  f"finished in {summary['seconds']:.1f} s")


def _comparison(baseline: dict[str, Any], candidate: dict[str, Any]) -> Table:
    table = Table(title="Backtest: baseline and candidate", title_justify="left")
    table.add_column("figure", no_wrap=True)
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        table.add_column(f"{name}\n{side['bundle']}\n{side['policy']}", justify="right")
    table.add_column("change", justify="right")

    table.add_row("escalation threshold", _format(baseline["thresholds"]["escalation"]),
                  _format(candidate["thresholds"]["escalation"]), "")
    for section, key, label in ROWS:
        old, new = baseline[section].get(key), candidate[section].get(key)
        delta = new - old if old is not None and new is not None else None
        table.add_row(label, _format(old), _format(new), _format(delta, signed=True))
    return table


def _load_table(baseline: dict[str, Any], candidate: dict[str, Any]) -> Table:
    table = Table(title="Expected agent load: handoffs per team (immediate/rapid/scheduled)",
                  title_justify="left")
    table.add_column("team", no_wrap=True)
    table.add_column("baseline", justify="right")
    table.add_column("candidate", justify="right")
    table.add_column("candidate per 1,000 conversations", justify="right")
    for team in sorted(set(baseline["load"]) | set(candidate["load"])):
        old, new = baseline["load"].get(team), candidate["load"].get(team)
        per_thousand = new["per_1000_conversations"] if new else None
        table.add_row(team, _tiers(old), _tiers(new), _format(per_thousand))
    return table


def _tiers(load: dict[str, Any] | None) -> str:
    if load is None:
        return "0"
    split = "/".join(str(load[tier.value]) for tier in TIER_ORDER)
    return f"{load['total']} ({split})"


def _format(value: Any, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{value:+d}" if signed and isinstance(value, int) else str(value)
