"""Shared check that training tables and the scorer compute the same escalation features."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipelines.train.config import load_train_config
from pipelines.train.data import load_training_data
from pipelines.train.tables import escalation_table
from serving.heads import Head
from serving.rules import load_policy
from serving.scorer import Scorer


def training_and_served_features(
    bundle_dir: Path, embed: Callable[[list[str]], np.ndarray], count: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Return the features of the first `count` test conversations, from the training table
    built with `embed` and from the bundle's scorer."""
    config = load_train_config()
    conversations = load_training_data(seed=config.seed).conversations["test"][:count]
    table = escalation_table(
        conversations,
        embed,
        Head(bundle_dir / "sentiment.onnx"),
        Head(bundle_dir / "frustration.onnx"),
        load_policy(),
        horizon=config.escalation.horizon,
        dissatisfied_rating=config.escalation.dissatisfied_rating,
    )
    scorer = Scorer(bundle_dir)
    served = np.vstack([scorer.features(conversation)[2] for conversation in conversations])
    return table.features, served
