"""Write the HTML model report of a bundle: check inputs, score, compute, draw and render."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from pipelines.atomic import atomic_output
from pipelines.evaluate.vader import VaderBaseline
from pipelines.report.content import build_content
from pipelines.report.data import Progress, collect_rows, has_labels
from pipelines.report.figures import draw_charts
from pipelines.report.html import render_html
from pipelines.train.config import TrainConfig, load_train_config
from serving.bundle import Manifest, load_manifest
from serving.errors import ReportError
from serving.rules import Policy
from serving.schema import Conversation
from serving.scorer import Scorer

logger = logging.getLogger(__name__)


def write_report(
    bundle_dir: Path,
    out_path: Path,
    conversations: Sequence[Conversation] | None = None,
    *,
    policy: Policy | None = None,
    data_description: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Score labelled conversations with a bundle and write the self-contained HTML report.

    `conversations` defaults to the test splits the bundle was trained beside (GoEmotions test
    and the stored USS split, with the seed and split name of the bundle's training
    parameters). Escalation labels use the bundle's horizon and dissatisfied rating. Returns
    `out_path`. Raises ReportError when `out_path` cannot be written or the data has no
    labelled customer turn. Raises BundleError when `bundle_dir` is not a valid bundle. All
    three are checked before any scoring.
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    check_writable(out_path)
    manifest = load_manifest(bundle_dir, verify=False)
    config = bundle_train_config(manifest)

    if conversations is None:
        conversations = default_conversations(config)
        data_description = data_description or (
            f"the test splits of the bundled data (GoEmotions test, USS split "
            f"'{config.escalation.splits}' with seed {config.seed})")
    description = data_description or f"{len(conversations)} conversations"
    if not has_labels(conversations):
        raise ReportError(
            f"{description}: no customer turn carries labels.sentiment or "
            "labels.satisfaction, so there is nothing to measure; pass labelled data "
            "(turn labels are described in data/README.md)")

    logger.info("report of bundle %s on %d conversations started", manifest.name,
                len(conversations))
    scorer = Scorer(bundle_dir, policy=policy)
    rows = collect_rows(conversations, scorer, VaderBaseline(),
                        horizon=config.escalation.horizon,
                        dissatisfied_rating=config.escalation.dissatisfied_rating,
                        progress=progress)
    content = build_content(rows, scorer.manifest, scorer.thresholds,
                            bundle_dir=Path(bundle_dir), data_description=description)
    page = render_html(content, draw_charts(content))

    _write_atomically(out_path, page)
    logger.info("report of bundle %s written to %s (%d bytes, %.1f s)", manifest.name,
                out_path, len(page.encode("utf-8")), time.perf_counter() - started)
    return out_path


def check_writable(out_path: Path) -> None:
    """Create the report's folder and check that a file can be written there.

    A probe file is written because root passes every permission-bit check, so `os.access`
    would accept folders that root cannot write either.
    """
    if out_path.is_dir():
        raise ReportError(f"cannot write the report to {out_path}: it is a folder; pass a file "
                          f"path such as {out_path / 'report.html'}")
    existing = next((folder for folder in out_path.parents if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ReportError(f"cannot write the report to {out_path}: {existing} is a file, not a "
                          "folder; pass an output path in a writable folder")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=out_path.parent, prefix=".report-probe-")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ReportError(f"cannot write the report to {out_path}: {reason}; pass an output "
                          "path in a writable folder") from None
    os.close(handle)
    os.unlink(probe)


def bundle_train_config(manifest: Manifest) -> TrainConfig:
    """Return the training configuration stored in the manifest, or the default one.

    The stored one gives the label definition and the split the bundle was trained with, so
    the default data is its own test split. Bundles whose parameters do not validate fall back
    to pipelines/config/train.yaml with a warning.
    """
    try:
        return TrainConfig.model_validate(manifest.parameters)
    except ValidationError:
        logger.warning("bundle %s has no valid training parameters in its manifest; using "
                       "the default training configuration for labels and splits",
                       manifest.name)
        return load_train_config()


def default_conversations(config: TrainConfig) -> list[Conversation]:
    """Return the test messages and conversations that `escalation evaluate` uses by default."""
    from pipelines.train.data import load_training_data

    data = load_training_data(seed=config.seed, splits_name=config.escalation.splits)
    return data.messages["test"] + data.conversations["test"]


def _write_atomically(out_path: Path, page: str) -> None:
    # A half-written report must never replace a good one, so the page goes to a side file
    # first and is renamed over the target.
    try:
        with atomic_output(out_path) as partial:
            partial.write_text(page, encoding="utf-8")
    except OSError as error:
        raise ReportError(f"cannot write the report to {out_path}: {error}; pass an output "
                          "path in a writable folder") from None
