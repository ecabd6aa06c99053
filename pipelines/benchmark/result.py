"""Print a benchmark's metrics and log the run to MLflow, the same way for every benchmark."""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import typer

logger = logging.getLogger(__name__)

EXPERIMENT = "escalation-benchmarks"


@dataclass
class BenchmarkResult:
    """Measurements of one benchmark run.

    `metrics` contains the headline numbers under snake-case keys, such as `f1`, `macro_f1`,
    `auc` and `gt_1` for MHCH or `uar`, `kappa`, `rho` and `f1_dissatisfied` for USS. Each
    value is a number, or None when undefined. `details` contains anything else worth printing
    (per-fold scores, baselines), and `params` contains the settings that produced them.
    """

    name: str
    metrics: dict[str, float | None]
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def report(result: BenchmarkResult, as_json: bool, log_to_mlflow: bool = True) -> None:
    """Log `result` to MLflow (unless `log_to_mlflow` is False), then print it.

    With `as_json` the last line of output is one JSON object: the metrics at the top level,
    plus `benchmark`, `params`, `details` and `mlflow_run_id`, so a script can read any run.
    """
    run_id = _log_run(result) if log_to_mlflow else None

    if as_json:
        from pipelines.cli_common import finite_json

        payload: dict[str, Any] = dict(result.metrics)
        payload.update(benchmark=result.name, params=result.params, details=result.details,
                       mlflow_run_id=run_id)
        typer.echo(json.dumps(finite_json(payload), allow_nan=False))
        return

    typer.echo(f"benchmark: {result.name}")
    for key, value in result.metrics.items():
        typer.echo(f"  {key:<18} {_format(value)}")
    if run_id:
        typer.echo(f"MLflow run: {run_id} (experiment {EXPERIMENT})")


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _log_run(result: BenchmarkResult) -> str:
    from pipelines.registry import log_metrics, log_params, start_run

    run_name = f"{result.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with start_run(EXPERIMENT, run_name) as run:
        log_params({**result.params, "machine": platform.machine(),
                    "python": platform.python_version()})
        log_metrics({key: value for key, value in result.metrics.items() if value is not None})
        log_metrics(result.details)
        run_id = str(run.info.run_id)

    logger.info("logged benchmark %s to MLflow run %s", result.name, run_id)
    return run_id

