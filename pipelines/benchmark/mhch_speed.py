"""Speed of the token encoder and the ONNX escalation head, one turn at a time as in serving.

Run `python -m pipelines.benchmark.mhch_speed TRAIN_FILE SCORE_FILE`: it fits the encoder and
head on TRAIN_FILE, exports the head to ONNX, then scores every turn of SCORE_FILE in order, one
message per call (numpy encoder, serving.features, onnxruntime), and prints one JSON object
with messages per second.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.datasets.mhch import read_mhch
from pipelines.export.heads import export_head
from pipelines.train.tokens import TokenEncoderSettings, fit_token_encoder
from pipelines.train.tokens_head import fit_token_head
from pipelines.train.tokens_table import turn_table
from serving.features import TurnSequenceFeatures
from serving.heads import Head

logger = logging.getLogger(__name__)


def measure(train_path: Path, score_path: Path, *, c: float = 1.0,
            repeats: int = 3) -> dict[str, Any]:
    """Fit on `train_path`, then time scoring every turn of `score_path` one at a time."""
    train = read_mhch(train_path)
    scored = read_mhch(score_path)
    encoder, _ = fit_token_encoder([turn.text for conversation in train
                                    for turn in conversation.turns], TokenEncoderSettings())
    table = turn_table(train, encoder)
    fitted = fit_token_head(table.features, table.labels, table.conversation_ids, c=c)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "escalation.onnx"
        export_head(fitted.estimator, table.features.shape[1], path,
                    table.features[:200].toarray(), name="escalation")
        head = Head(path, intra_op_threads=1)
        timings = [_score_all(scored, encoder, head) for _ in range(repeats)]

    turns = sum(len(conversation.turns) for conversation in scored)
    best = min(timings)
    return {
        "benchmark": "mhch_speed",
        "train_file": train_path.name,
        "score_file": score_path.name,
        "messages": turns,
        "features": int(table.features.shape[1]),
        "seconds_best": best,
        "messages_per_second": turns / best,
        "milliseconds_per_message": 1000.0 * best / turns,
        "repeats": repeats,
    }


def _score_all(conversations: list[Any], encoder: Any, head: Head) -> float:
    started = time.perf_counter()
    for conversation in conversations:
        builder = TurnSequenceFeatures(len(encoder.vocabulary))
        for turn in conversation.turns:
            columns, values = encoder.transform_sparse([turn.text]).row(0)
            row = builder.turn_row(turn, columns, values).to_dense()
            head.predict_proba(row[np.newaxis, :])
    return time.perf_counter() - started


def main(arguments: list[str]) -> int:
    """Print the measurement of `measure` for the two files named in `arguments`."""
    if len(arguments) != 2:
        print("usage: python -m pipelines.benchmark.mhch_speed TRAIN_FILE SCORE_FILE",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    print(json.dumps(measure(Path(arguments[0]), Path(arguments[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
