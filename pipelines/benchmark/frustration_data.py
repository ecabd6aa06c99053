"""Readers of labelled frustration data for the benchmark: GoEmotions splits and conversations.

A GoEmotions comment is frustrated when any of its emotions is anger, annoyance,
disappointment or disapproval, the rule of `pipelines.datasets.goemotions.is_frustration` that
the product's frustration head is trained on. A GoEmotions file of any name works as long as
`labels.txt` (the 28 emotion names) sits beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.datasets.goemotions import LABELS_FILE, is_frustration, read_goemotions_examples
from pipelines.datasets.paths import GOEMOTIONS_DIR, goemotions_file, shared_datasets_dir
from serving.errors import DatasetError
from serving.schema import Role, read_conversations

logger = logging.getLogger(__name__)

FORMAT_HINT = (
    "Pass --data with a GoEmotions split (.tsv or .tsv.gz, labels.txt beside it) or a JSON "
    "Lines file of conversations whose customer turns carry labels.frustration"
)


@dataclass(frozen=True)
class FrustrationSample:
    """Labelled messages: `labels` is 1 for a frustrated message and 0 otherwise, shape [n]."""

    texts: list[str]
    labels: np.ndarray
    source: Path


def default_frustration_file() -> Path:
    """Return the GoEmotions test split: the shared copy when present, else the bundled one.

    Raises DatasetError naming both paths when neither exists.
    """
    shared = shared_datasets_dir()
    candidates = [shared / "goemotions" / "test.tsv.gz"] if shared is not None else []
    candidates.append(goemotions_file("test"))
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetError(f"the default benchmark data was not found at "
                       f"{' or '.join(str(path) for path in candidates)}. {FORMAT_HINT}")


def read_frustration_file(path: Path) -> FrustrationSample:
    """Read frustration labels from a GoEmotions `.tsv[.gz]` or a `.jsonl`/`.json` file."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".tsv"):
        return _read_goemotions_frustration(path)
    if name.endswith(".jsonl") or name.endswith(".json"):
        return _read_conversation_frustration(path)
    raise DatasetError(f"{path}: unknown data format. {FORMAT_HINT}")


def _read_goemotions_frustration(path: Path) -> FrustrationSample:
    names_file = path.parent / LABELS_FILE
    if not names_file.is_file():
        raise DatasetError(f"{names_file} not found, but the emotion ids of {path} index that "
                           f"file. Copy {GOEMOTIONS_DIR / LABELS_FILE} next to {path.name}.")

    examples = read_goemotions_examples(path)
    if not examples:
        raise DatasetError(f"{path} has no comments. {FORMAT_HINT}")
    texts = [example.text for example in examples]
    labels = np.asarray([int(is_frustration(example.emotions)) for example in examples],
                        dtype=np.int64)
    logger.info("read %d GoEmotions comments (%d frustrated) from %s", len(texts),
                int(labels.sum()), path)
    return FrustrationSample(texts, labels, path)


def _read_conversation_frustration(path: Path) -> FrustrationSample:
    texts: list[str] = []
    labels: list[int] = []
    for conversation in read_conversations(path):
        for turn in conversation.turns:
            if turn.role is Role.CUSTOMER and turn.labels is not None \
                    and turn.labels.frustration is not None:
                texts.append(turn.text)
                labels.append(int(turn.labels.frustration))

    if not texts:
        raise DatasetError(f"{path} has no customer turn with labels.frustration. {FORMAT_HINT}")
    return FrustrationSample(texts, np.asarray(labels, dtype=np.int64), path)
