"""Load the corpora of a training run and any evaluation file, whatever its format."""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.datasets.goemotions import read_goemotions
from pipelines.datasets.paths import (
    BUNDLED_USS_FILES,
    GOEMOTIONS_DIR,
    USS_DIR,
    goemotions_file,
)
from pipelines.datasets.splits import ensure_splits, split_file_path
from pipelines.datasets.uss import read_bundled_uss, read_uss
from pipelines.train.run import TrainingData, fingerprint_files
from serving.schema import Conversation, read_conversations

logger = logging.getLogger(__name__)

# GoEmotions' official dev split plays the validation role.
GOEMOTIONS_SPLIT_ROLES = {"train": "train", "validation": "dev", "test": "test"}


def load_training_data(*, seed: int, splits_name: str = "uss") -> TrainingData:
    """Read the bundled GoEmotions and USS corpora, split by the stored split files."""
    messages = {
        role: read_goemotions(goemotions_file(split), split)
        for role, split in GOEMOTIONS_SPLIT_ROLES.items()
    }
    conversations = ensure_splits(splits_name, read_bundled_uss(), seed=seed)

    raw_files = [USS_DIR / name for name in BUNDLED_USS_FILES.values()]
    raw_files += [goemotions_file(split) for split in GOEMOTIONS_SPLIT_ROLES.values()]
    raw_files += [GOEMOTIONS_DIR / "sentiment_mapping.tsv", split_file_path(splits_name)]
    fingerprint = {
        "files": fingerprint_files(raw_files),
        "counts": {
            **{f"messages_{role}": len(rows) for role, rows in messages.items()},
            **{f"conversations_{role}": len(rows) for role, rows in conversations.items()},
        },
    }
    return TrainingData(messages=messages, conversations=conversations, fingerprint=fingerprint)


def read_any(path: str | Path) -> list[Conversation]:
    """Read conversations from JSON Lines, a USS `.txt[.gz]` file or a GoEmotions `.tsv[.gz]`.

    The format is taken from the file name, so held-out files of the original corpora can be
    evaluated without conversion.
    """
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".jsonl") or name.endswith(".json"):
        return read_conversations(path)
    if name.endswith(".txt"):
        corpus = "".join(character for character in name.removesuffix(".txt")
                         if character.isalnum()) or "uss"
        if not corpus[0].isalpha():
            corpus = "uss" + corpus
        return read_uss(path, corpus)
    if name.endswith(".tsv"):
        split = name.removesuffix(".tsv")
        if split not in GOEMOTIONS_SPLIT_ROLES.values():
            raise ValueError(f"{path}: a GoEmotions file must be named train, dev or test "
                             "(.tsv or .tsv.gz) next to sentiment_mapping.tsv")
        return read_goemotions(path, split)
    raise ValueError(f"{path}: unknown data format; pass JSON Lines (.jsonl), a USS dialogue "
                     "file (.txt or .txt.gz) or a GoEmotions split (.tsv or .tsv.gz)")
