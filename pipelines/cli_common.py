"""Options and helpers shared by every `escalation` command module."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

BundleOption = Annotated[
    Path | None,
    typer.Option("--bundle", "-b", help="Bundle folder to use; default: the newest under "
                 "models/.", file_okay=False),
]
PolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", help="Rule policy YAML; default: the packaged policy "
                 "(serving/policies/default.yaml).", dir_okay=False),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Training configuration YAML; default: "
                 "pipelines/config/train.yaml.", dir_okay=False),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log at DEBUG level instead of INFO.")
]


def configure_logging(verbose: bool) -> None:
    """Send INFO (or DEBUG) logs to stderr with the redacting filter installed."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from serving.redact import install_redaction

    install_redaction()
    # MLflow and alembic log every migration step of a new store at INFO.
    for noisy in ("alembic", "mlflow.store", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def resolve_bundle(bundle: Path | None) -> Path:
    """Return `bundle`, or the newest bundle under models/ when it is None."""
    from pipelines.train.run import MODELS_DIR
    from serving.bundle import find_latest_bundle

    return bundle if bundle is not None else find_latest_bundle(MODELS_DIR)


def finite_json(value: Any) -> Any:
    """Return `value` with NaN and infinities as None, numpy scalars as Python numbers.

    JSON has no NaN; an AUC of a one-class sample is undefined and printed as null.
    """
    if isinstance(value, dict):
        return {str(key): finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
