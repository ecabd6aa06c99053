"""The `escalation backtest` and `escalation tune` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.cli_common import (
    BundleOption,
    ConfigOption,
    ForceOption,
    PolicyOption,
    VerboseOption,
    check_output_path,
    configure_logging,
    finite_json,
    resolve_bundle,
)

if TYPE_CHECKING:
    from pipelines.backtest.jobs import DataSet, LabelSettings, Side
    from pipelines.backtest.tune import Target

DataOption = Annotated[
    Path,
    typer.Option("--data", "-d", help="Past conversations with recorded outcomes: JSON Lines, "
                 "USS .txt[.gz] or GoEmotions .tsv[.gz] (any file `escalation evaluate` "
                 "reads).", dir_okay=False),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print every figure as one JSON object on the last line "
                       "instead of tables.")
]


def backtest(
    data: DataOption,
    bundle: BundleOption = None,
    policy: PolicyOption = None,
    baseline_bundle: Annotated[Path | None, typer.Option(
        "--baseline-bundle", help="Bundle to compare against; default: the newest under "
        "models/.", file_okay=False)] = None,
    baseline_policy: Annotated[Path | None, typer.Option(
        "--baseline-policy", help="Rule policy to compare against; default: the packaged "
        "policy.", dir_okay=False)] = None,
    roster: Annotated[Path | None, typer.Option(
        "--roster", help="Roster YAML that routes the handoffs to teams; default: "
        "serving/policies/roster.example.yaml.", dir_okay=False)] = None,
    changes_out: Annotated[Path | None, typer.Option(
        "--changes-out", help="Write one JSON line per conversation whose decision changed "
        "(id, first changed turn, old and new tier and probability). An existing file is "
        "overwritten only with --force.", dir_okay=False)] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Compare a candidate bundle or policy with the current one on past conversations.

    Every conversation is replayed turn by turn through the serving runtime under both, and
    the report shows escalation rate, precision, recall, handoff timing and agent load.
    Satisfaction ratings become labels with the horizon and rating of the training
    configuration (--config).
    """
    configure_logging(verbose)
    from pipelines.backtest.jobs import Side, load_data, run_backtest
    from pipelines.backtest.policy_file import write_text_atomically
    from pipelines.backtest.render import render_backtest
    from pipelines.progress import ProgressReporter

    # The output is checked before any bundle is looked up or loaded. A bundle left to its
    # default is one of the folders under models/, so that whole folder is protected.
    from pipelines.train.run import MODELS_DIR

    if changes_out is not None:
        check_output_path(changes_out, [
            ("--data", data), ("--bundle", bundle or MODELS_DIR), ("--policy", policy),
            ("--baseline-bundle", baseline_bundle or MODELS_DIR),
            ("--baseline-policy", baseline_policy), ("--roster", roster), ("--config", config),
            *_default_policy(policy, baseline_policy),
        ], force=force, option="--changes-out")
    candidate = Side(resolve_bundle(bundle), policy)
    baseline = Side(resolve_bundle(baseline_bundle), baseline_policy)

    dataset = load_data(data, _label_settings(config))
    _warn_about_inputs(dataset, candidate, baseline)
    with ProgressReporter() as reporter:
        report, changes = run_backtest(dataset, candidate, baseline, roster_path=roster,
                                       progress=reporter.update)

    if changes_out is not None:
        lines = "".join(json.dumps(finite_json(change)) + "\n" for change in changes)
        write_text_atomically(changes_out, lines)
        report["changes_file"] = str(changes_out)
    if as_json:
        typer.echo(json.dumps(finite_json(report), allow_nan=False))
    else:
        render_backtest(report)
        if changes_out is not None:
            typer.echo(f"changes: {changes_out} ({len(changes)} conversations)")


def tune(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the tuned policy "
                                      "YAML. An existing file is overwritten only with "
                                      "--force.", dir_okay=False)],
    bundle: BundleOption = None,
    policy: PolicyOption = None,
    max_escalation_rate: Annotated[float | None, typer.Option(
        "--max-escalation-rate", help="Highest share of conversations that may escalate, "
        "in (0, 1]; the lowest threshold that keeps to it wins.")] = None,
    min_precision: Annotated[float | None, typer.Option(
        "--min-precision", help="Lowest share of escalated conversations that must have "
        "needed a human, in (0, 1]; the lowest threshold that reaches it wins.")] = None,
    prepare_recall: Annotated[float, typer.Option(
        "--prepare-recall", help="Share of the conversations that needed a human that the "
        "prepare threshold must warn about or escalate, in (0, 1].")] = 0.8,
    allow_weak_threshold: Annotated[bool, typer.Option(
        "--allow-weak-threshold", help="Write the policy even when the chosen threshold finds "
        "no conversation that needed a human, or escalates fewer than 5 labelled "
        "conversations.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Pick escalation and prepare thresholds for a target and write them into a policy copy.

    The data is replayed once turn by turn, and every threshold is judged from the recorded
    probabilities. The written policy is then replayed again to confirm the figures.
    """
    configure_logging(verbose)
    from pipelines.backtest.jobs import Side, load_data, run_tuning
    from pipelines.backtest.render import render_tuning
    from pipelines.progress import ProgressReporter
    from pipelines.train.run import MODELS_DIR

    target = _target(max_escalation_rate, min_precision)
    check_output_path(out, [("--data", data), ("--bundle", bundle or MODELS_DIR),
                            ("--policy", policy), ("--config", config),
                            *_default_policy(policy)], force=force)
    side = Side(resolve_bundle(bundle), policy)

    dataset = load_data(data, _label_settings(config))
    with ProgressReporter() as reporter:
        summary = run_tuning(dataset, side, target, prepare_recall=prepare_recall, output=out,
                             allow_weak=allow_weak_threshold, progress=reporter.update)
    if as_json:
        typer.echo(json.dumps(finite_json(summary), allow_nan=False))
    else:
        render_tuning(summary)


def _target(max_escalation_rate: float | None, min_precision: float | None) -> Target:
    from pipelines.backtest.tune import Target

    if max_escalation_rate is not None and min_precision is None:
        return Target("max_escalation_rate", max_escalation_rate)
    if min_precision is not None and max_escalation_rate is None:
        return Target("min_precision", min_precision)
    raise typer.BadParameter("pass exactly one of --max-escalation-rate and --min-precision",
                             param_hint="target")


def _default_policy(*policies: Path | None) -> list[tuple[str, Path | None]]:
    """Return the packaged policy as an input when a side uses it, so it is never overwritten."""
    from serving.rules import DEFAULT_POLICY_PATH

    if any(policy is None for policy in policies):
        return [("packaged policy", DEFAULT_POLICY_PATH)]
    return []


def _warn_about_inputs(dataset: DataSet, candidate: Side, baseline: Side) -> None:
    """Print a warning line for a run whose figures cannot show what a backtest is for."""
    from serving.rules import DEFAULT_POLICY_PATH

    if not any(gold is not None for gold in dataset.golds):
        typer.echo(f"warning: none of the {len(dataset.conversations)} conversations in "
                   f"{dataset.path} carries labels (labels.escalated, turn labels.handoff or "
                   "labels.satisfaction), so precision, recall and handoff timing need labels "
                   "and are shown as '-'", err=True)

    def policy_file(side: Side) -> Path:
        return (side.policy or DEFAULT_POLICY_PATH).resolve()

    if (candidate.bundle.resolve() == baseline.bundle.resolve()
            and policy_file(candidate) == policy_file(baseline)):
        typer.echo(f"warning: the candidate and the baseline are the same bundle "
                   f"({candidate.bundle}) and the same policy ({policy_file(candidate)}), so "
                   "every change is 0; pass --bundle or --policy to compare a candidate",
                   err=True)


def _label_settings(config: Path | None) -> LabelSettings:
    from pipelines.backtest.jobs import LabelSettings
    from pipelines.train.config import load_train_config

    settings = load_train_config(config).escalation
    return LabelSettings(settings.horizon, settings.dissatisfied_rating)


def register(app: typer.Typer) -> None:
    """Add the backtest and tune commands to the `escalation` app."""
    app.command()(backtest)
    app.command()(tune)
