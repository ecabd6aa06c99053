"""Notebook settings read from environment variables: the bundle to analyse and the sample size."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from serving.bundle import MANIFEST_FILE, find_latest_bundle

logger = logging.getLogger(__name__)

BUNDLE_VARIABLE = "ESCALATION_BUNDLE"
SAMPLE_VARIABLE = "ESCALATION_NOTEBOOK_SAMPLE"

Item = TypeVar("Item")


def notebook_bundle(models_dir: Path | None = None) -> Path:
    """Return the bundle folder named by ESCALATION_BUNDLE, else the newest under `models_dir`.

    `models_dir` defaults to the repository's models/ folder. Raises ValueError when the
    variable names a folder without a manifest, and BundleError when it is unset and no bundle
    exists.
    """
    configured = os.environ.get(BUNDLE_VARIABLE, "").strip()
    if configured:
        folder = Path(configured).expanduser()
        if not (folder / MANIFEST_FILE).is_file():
            # A relative path resolves against the kernel's working folder, which is the
            # notebook's folder and not the shell's, so the message shows where it looked.
            raise ValueError(
                f"{BUNDLE_VARIABLE}={configured!r} is not a bundle folder: "
                f"{folder.resolve()} has no {MANIFEST_FILE}; set it to the absolute path of a "
                "folder written by `escalation train` (under models/), or unset it to use the "
                "newest bundle"
            )
        logger.info("notebook bundle %s (from %s)", folder, BUNDLE_VARIABLE)
        return folder

    if models_dir is None:
        from pipelines.train.run import MODELS_DIR

        models_dir = MODELS_DIR
    folder = find_latest_bundle(models_dir)
    logger.info("notebook bundle %s (newest under %s)", folder, models_dir)
    return folder


def notebook_sample_size(default: int) -> int:
    """Return the number of conversations to analyse: ESCALATION_NOTEBOOK_SAMPLE or `default`.

    0 means all of them. Raises ValueError when the variable is not a whole number >= 0.
    """
    configured = os.environ.get(SAMPLE_VARIABLE, "").strip()
    if not configured:
        return default

    try:
        size = int(configured)
    except ValueError:
        size = -1
    if size < 0:
        raise ValueError(
            f"{SAMPLE_VARIABLE}={configured!r} is invalid; set it to a whole number of "
            "conversations >= 0 (0 analyses all of them) or unset it"
        )
    return size


def sample_items(items: Sequence[Item], size: int, *, seed: int) -> list[Item]:
    """Return `size` items drawn without replacement, in their original order.

    A size of 0, or one at least the number of items, returns every item. The same seed gives
    the same sample, so a notebook's figures can be reproduced.
    """
    if size < 0:
        raise ValueError(f"sample size is {size}; pass a whole number >= 0 (0 keeps every item)")
    if size == 0 or size >= len(items):
        return list(items)

    chosen = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[index] for index in chosen]
