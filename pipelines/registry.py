"""MLflow tracking and model registry: where every training run and bundle is recorded."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.datasets.paths import PROJECT_ROOT

logger = logging.getLogger(__name__)

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
DEFAULT_ARTIFACT_ROOT = PROJECT_ROOT / "var" / "mlflow-artifacts"


def tracking_uri() -> str:
    """Return MLFLOW_TRACKING_URI when set, else the SQLite store in the project folder."""
    return os.environ.get(TRACKING_URI_VARIABLE) or DEFAULT_TRACKING_URI


@contextmanager
def start_run(experiment: str, run_name: str, uri: str | None = None) -> Iterator[Any]:
    """Open an MLflow run in `experiment`, creating the experiment on first use.

    A new experiment keeps its artifacts under var/mlflow-artifacts of the project rather than
    in ./mlruns of whatever folder the command was started from.
    """
    import mlflow

    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = artifact_root_for(uri)
        if location is not None:
            location.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(experiment,
                                 artifact_location=location.as_uri() if location else None)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        logger.info("MLflow run %s started in experiment %s (%s)", run.info.run_id,
                    experiment, uri)
        yield run


def artifact_root_for(uri: str) -> Path | None:
    """Return where a new experiment keeps its artifacts for a tracking URI.

    The project's own store uses var/mlflow-artifacts; another SQLite store keeps them in a
    folder beside its database file; a tracking server decides for itself (None).
    """
    if uri == DEFAULT_TRACKING_URI:
        return DEFAULT_ARTIFACT_ROOT
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlflow-artifacts").resolve()
    return None


def log_params(params: Mapping[str, Any]) -> None:
    """Log flat parameters, turning nested values into dotted keys."""
    import mlflow

    mlflow.log_params({key: str(value)[:500] for key, value in _flatten(params).items()})


def log_metrics(metrics: Mapping[str, Any]) -> None:
    """Log every finite number of a nested metrics dict under its dotted key."""
    import mlflow

    numbers = {
        key.replace("/", "_"): float(value)
        for key, value in _flatten(metrics).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(float(value))
    }
    mlflow.log_metrics(numbers)


def log_bundle(bundle_dir: Path, registered_model: str, run_id: str) -> str:
    """Log the bundle folder as run artifacts and register it; return the model version."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.log_artifacts(str(bundle_dir), artifact_path="bundle")
    client = MlflowClient()
    try:
        client.create_registered_model(registered_model)
    except MlflowException as error:
        if "already exists" not in str(error).lower() and \
                "RESOURCE_ALREADY_EXISTS" not in str(error):
            raise
    version = client.create_model_version(
        registered_model, source=f"runs:/{run_id}/bundle", run_id=run_id,
        description=f"bundle {bundle_dir.name}",
    )
    logger.info("registered %s version %s from run %s", registered_model, version.version,
                run_id)
    return str(version.version)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat
