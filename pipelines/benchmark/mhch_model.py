"""MHCH evaluation of a saved token model folder, scored through serving's `TokenModel`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.benchmark.mhch_cv import RunResult, check_labelled, handoff_scores
from serving.schema import Conversation
from serving.token_model import TokenModel

logger = logging.getLogger(__name__)


def evaluate_saved_model(model_dir: Path, test: Sequence[Conversation], *,
                         gt_lambda: float = 0.0) -> RunResult:
    """Score every turn of `test` with the model in `model_dir` and its saved threshold.

    Nothing is refitted, so a held-out file gets the numbers the deployed model would give.
    `train_dialogues` is the count the manifest records, or 0 when it records none.
    """
    started = time.perf_counter()
    check_labelled(test, "test")
    model = TokenModel.load(model_dir)

    labels: list[int] = []
    probabilities: list[np.ndarray] = []
    conversation_ids: list[str] = []
    for conversation in test:
        probabilities.append(model.score_turns(conversation))
        for turn in conversation.turns:
            labels.append(int(bool(turn.labels and turn.labels.handoff)))
            conversation_ids.append(conversation.id)

    probability = np.concatenate(probabilities).astype(np.float64)
    predicted = model.decide(probability).astype(np.int64)
    metrics = handoff_scores(np.asarray(labels, dtype=np.int64), probability, predicted,
                             np.asarray(conversation_ids), gt_lambda=gt_lambda)
    train_dialogues = int(model.manifest.training.get("dialogues", 0))
    logger.info("scored %d MHCH dialogues with saved model %s", len(test), model_dir)
    return RunResult(metrics, model.threshold, train_dialogues, len(test), len(labels),
                     time.perf_counter() - started)
