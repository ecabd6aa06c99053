"""Rated USS conversations of one stored split, optionally sampled, for analysing a bundle."""

from __future__ import annotations

import logging

from pipelines.analysis.notebook_settings import sample_items
from pipelines.datasets.splits import ensure_splits
from pipelines.datasets.uss import read_bundled_uss
from serving.schema import Conversation

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
USS_SPLITS = "uss"


def uss_split(split: str, *, sample: int = 0, seed: int | None = None) -> list[Conversation]:
    """Return the bundled USS conversations of `split` from data/splits/uss.json.

    `sample` > 0 draws that many conversations with `seed` (default: the training seed of
    pipelines/config/train.yaml), keeping the stored order. The split file must have been made
    with the training seed, as `escalation train` checks too.
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLIT_NAMES)}")

    from pipelines.train.config import load_train_config

    training_seed = load_train_config().seed
    conversations = ensure_splits(USS_SPLITS, read_bundled_uss(), seed=training_seed)[split]
    chosen = sample_items(conversations, sample,
                          seed=training_seed if seed is None else seed)
    logger.info("USS %s split: %d of %d conversations", split, len(chosen), len(conversations))
    return chosen
