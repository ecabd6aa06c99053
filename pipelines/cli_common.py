"""Options and helpers shared by every `escalation` command module."""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from serving.schema import Conversation

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
ForceOption = Annotated[
    bool, typer.Option("--force", help="Overwrite the output file if it exists. Without it an "
                       "existing output file is rejected. An output that is an input file or "
                       "not a regular file is rejected even with --force.")
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


def check_output_path(path: Path, inputs: Sequence[tuple[str, Path | None]], *, force: bool,
                      option: str = "--out") -> None:
    """Reject an output path that would destroy an input or a file the user did not mean.

    `inputs` pairs each input option with its path (None: not given). Data and policy paths
    are files, a bundle is a folder whose files must not be overwritten. The output's folder
    is created and probed here, so an unwritable path fails before any replay or scoring.
    Raises typer.BadParameter (exit code 2) naming `option` and the path.
    """
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; pass a file path such as "
                                 f"{path / 'output'}", param_hint=option)
    if path.exists() and not path.is_file():
        raise typer.BadParameter(f"{path} exists and is not a regular file (a device, fifo or "
                                 "socket); pass the path of a regular file", param_hint=option)

    target = path.resolve()
    for input_option, input_path in inputs:
        if input_path is not None and _overwrites_input(path, target, input_path):
            raise typer.BadParameter(
                f"{path} is the {input_option} input {input_path}; writing there would "
                "destroy it, so pass another output path", param_hint=option)

    if path.exists() and not force:
        raise typer.BadParameter(f"{path} already exists; pass --force to overwrite it, or "
                                 "choose another path", param_hint=option)
    _check_folder_writable(path, option)


def _overwrites_input(path: Path, target: Path, input_path: Path) -> bool:
    source = input_path.resolve()
    if input_path.is_dir():
        # A new file beside the model files is harmless; replacing one breaks the bundle.
        return path.exists() and target.is_relative_to(source)
    if target == source:
        return True
    # Hard links have different paths but share the data.
    return path.exists() and input_path.exists() and os.path.samefile(path, input_path)


def _check_folder_writable(path: Path, option: str) -> None:
    # A probe file is written because root passes every permission-bit check, so `os.access`
    # would accept folders that root cannot write either.
    blocker = next((folder for folder in path.parents if folder.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise typer.BadParameter(f"cannot write {path}: {blocker} is a file, not a folder; "
                                 "pass an output path in a writable folder", param_hint=option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=path.parent, prefix=".escalation-probe-")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise typer.BadParameter(f"cannot write {path}: {reason}; pass an output path in a "
                                 "writable folder", param_hint=option) from None
    os.close(handle)
    os.unlink(probe)


def read_data_files(paths: Sequence[Path], option: str = "--data") -> list[Conversation]:
    """Read every file of the command-line `option` with `read_any` and join them, rejecting
    repeated ids.

    A conversation counted twice would double every figure computed from it, so a file given
    twice or an id found in two files raises SchemaError naming the id and both files.
    """
    from pipelines.train.data import read_any
    from serving.errors import SchemaError

    conversations: list[Conversation] = []
    source_of: dict[str, Path] = {}
    seen_files: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen_files:
            raise SchemaError(f"{option} {path} is given twice (also as {seen_files[resolved]}); "
                              "pass each file once")
        seen_files[resolved] = path

        for conversation in read_any(path):
            first = source_of.get(conversation.id)
            if first is not None:
                raise SchemaError(f"conversation id {conversation.id!r} is in both {first} and "
                                  f"{path}; give every conversation a unique id, or pass each "
                                  "conversation once")
            source_of[conversation.id] = path
            conversations.append(conversation)
    return conversations
