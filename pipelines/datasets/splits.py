"""Seeded train/validation/test splits by conversation, stored as JSON under data/splits/.

A split assigns whole conversations, never single turns, so no dialogue contributes turns to
both training and evaluation. Stored files make the split independent of the code and library
versions that made it. Regenerate a stored split with

    .venv/bin/python -m pipelines.datasets.splits uss --force
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.datasets.paths import SPLITS_DIR
from pipelines.datasets.uss import read_bundled_uss
from serving.errors import DatasetError
from serving.schema import Conversation

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_SEED = 13
FORMAT_VERSION = 1

# Loaders of the datasets whose split is stored; the name is also the file name in SPLITS_DIR.
DATASET_LOADERS: dict[str, Callable[[], list[Conversation]]] = {"uss": read_bundled_uss}

_SPLIT_FILE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_MAX_LISTED_IDS = 5


@dataclass(frozen=True)
class StoredSplits:
    """Content of a split file: the id lists and the settings that produced them."""

    splits: dict[str, list[str]]
    seed: int
    fractions: tuple[float, float, float]
    fingerprint: str


def ids_fingerprint(ids: Sequence[str]) -> str:
    """Return the sha256 hex digest of the sorted ids joined by newlines."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def make_splits(
    ids: Sequence[str],
    *,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, list[str]]:
    """Assign every id to train, validation or test at random, reproducibly for a seed.

    The ids are sorted before shuffling, so the result does not depend on their input order.
    The shuffled list is cut at round(n * train fraction) and round(n * (train + validation
    fraction)). Each returned list is sorted.
    """
    checked = _check_fractions(fractions)
    _check_unique(ids)

    # Python guarantees the same random() sequence for a seed across versions, but not the same
    # shuffle() result, which is why the split is stored and the file is the source of truth.
    shuffled = sorted(ids)
    random.Random(seed).shuffle(shuffled)

    first_cut = round(len(shuffled) * checked[0])
    second_cut = round(len(shuffled) * (checked[0] + checked[1]))
    return {
        "train": sorted(shuffled[:first_cut]),
        "validation": sorted(shuffled[first_cut:second_cut]),
        "test": sorted(shuffled[second_cut:]),
    }


def save_splits(
    splits: dict[str, list[str]],
    path: Path,
    *,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> None:
    """Write splits as JSON with the seed, fractions, counts and the fingerprint of all ids."""
    path = Path(path)
    _check_split_names(splits, path)
    all_ids = [conversation_id for name in SPLIT_NAMES for conversation_id in splits[name]]
    _check_unique(all_ids)

    document = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "fractions": list(_check_fractions(fractions)),
        "counts": {name: len(splits[name]) for name in SPLIT_NAMES},
        "fingerprint_sha256": ids_fingerprint(all_ids),
        "regenerate": f"python -m pipelines.datasets.splits {path.stem} --force",
        "splits": {name: sorted(splits[name]) for name in SPLIT_NAMES},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    logger.info("stored splits %s in %s", document["counts"], path)


def load_split_file(path: Path) -> StoredSplits:
    """Read and check a split file written by save_splits.

    Raises DatasetError when the file is missing, is not valid JSON, lacks a key, lists an id
    twice, or its counts or fingerprint do not match its id lists (a hand-edited file).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"{path}: split file not found; create it with "
            f"`python -m pipelines.datasets.splits {path.stem}`"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}: not valid JSON ({error.msg}, line {error.lineno}); regenerate it with "
            f"`python -m pipelines.datasets.splits {path.stem} --force`"
        ) from None

    splits = _read_split_lists(document, path)
    all_ids = [conversation_id for name in SPLIT_NAMES for conversation_id in splits[name]]
    _check_unique(all_ids, path)
    _check_counts(document, splits, path)
    fingerprint = ids_fingerprint(all_ids)
    if document.get("fingerprint_sha256") != fingerprint:
        raise DatasetError(
            f"{path}: fingerprint_sha256 does not match the listed ids (expected {fingerprint}); "
            "the file was edited by hand, regenerate it instead"
        )

    return StoredSplits(
        splits=splits,
        seed=_require_key(document, "seed", int, path),
        fractions=_check_fractions(_require_key(document, "fractions", list, path)),
        fingerprint=fingerprint,
    )


def load_splits(path: Path) -> dict[str, list[str]]:
    """Read a split file written by save_splits; return split name -> sorted ids."""
    return load_split_file(path).splits


def split_conversations(
    conversations: Sequence[Conversation],
    splits: dict[str, list[str]],
) -> dict[str, list[Conversation]]:
    """Group conversations by split, keeping their input order within each split.

    Raises DatasetError when a split names an id that is not among the conversations, or a
    conversation is in no split: either means the dataset changed since the split was made.
    """
    by_id: dict[str, Conversation] = {}
    for conversation in conversations:
        if conversation.id in by_id:
            raise DatasetError(
                f"conversation id {conversation.id!r} appears twice; ids must be unique to split"
            )
        by_id[conversation.id] = conversation

    split_of = {
        conversation_id: name
        for name in SPLIT_NAMES
        for conversation_id in splits.get(name, [])
    }
    missing = sorted(split_of.keys() - by_id.keys())
    unassigned = sorted(by_id.keys() - split_of.keys())
    if missing or unassigned:
        raise DatasetError(_changed_dataset_message(missing, unassigned))

    grouped: dict[str, list[Conversation]] = {name: [] for name in SPLIT_NAMES}
    for conversation in conversations:
        grouped[split_of[conversation.id]].append(conversation)
    return grouped


def ensure_splits(
    name: str,
    conversations: Sequence[Conversation],
    *,
    seed: int = DEFAULT_SEED,
    directory: Path = SPLITS_DIR,
) -> dict[str, list[Conversation]]:
    """Split conversations by the stored file `<directory>/<name>.json`, creating it if absent.

    An existing file is used as it is; it must have been made with `seed`, otherwise
    DatasetError is raised rather than silently mixing two splits.
    """
    path = split_file_path(name, directory)
    if path.is_file():
        stored = load_split_file(path)
        if stored.seed != seed:
            raise DatasetError(
                f"{path} was made with seed {stored.seed}, but seed {seed} was requested; pass "
                f"seed={stored.seed}, or regenerate with "
                f"`python -m pipelines.datasets.splits {name} --force --seed {seed}`"
            )
        try:
            return split_conversations(conversations, stored.splits)
        except DatasetError as error:
            raise DatasetError(f"{path} does not fit the data: {error}") from None

    splits = make_splits([conversation.id for conversation in conversations], seed=seed)
    save_splits(splits, path, seed=seed)
    return split_conversations(conversations, splits)


def split_file_path(name: str, directory: Path = SPLITS_DIR) -> Path:
    """Return the path of the split file of a dataset name such as `uss`."""
    if not _SPLIT_FILE_NAME.fullmatch(name):
        raise DatasetError(
            f"invalid split name {name!r}; use lowercase letters, digits, '-' or '_', starting "
            "with a letter"
        )
    return Path(directory) / f"{name}.json"


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(value) for value in fractions)
    if len(values) != len(SPLIT_NAMES) or any(value < 0 for value in values) \
            or not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise DatasetError(
            f"invalid split fractions {list(fractions)}; give three non-negative numbers for "
            "train, validation and test that sum to 1"
        )
    return values[0], values[1], values[2]


def _check_unique(ids: Sequence[str], path: Path | None = None) -> None:
    counts = Counter(ids)
    repeated = sorted(conversation_id for conversation_id, count in counts.items() if count > 1)
    if repeated:
        where = f"{path}: " if path else ""
        raise DatasetError(
            f"{where}{len(repeated)} conversation id(s) appear more than once, e.g. "
            f"{repeated[:_MAX_LISTED_IDS]}; every id must be unique"
        )


def _check_split_names(splits: dict[str, Any], path: Path) -> None:
    if set(splits) != set(SPLIT_NAMES):
        raise DatasetError(
            f"{path}: splits are {sorted(splits)}; expected exactly {list(SPLIT_NAMES)}"
        )


def _read_split_lists(document: Any, path: Path) -> dict[str, list[str]]:
    if not isinstance(document, dict):
        raise DatasetError(f"{path}: expected a JSON object, found {type(document).__name__}")
    raw = _require_key(document, "splits", dict, path)
    _check_split_names(raw, path)

    splits: dict[str, list[str]] = {}
    for name in SPLIT_NAMES:
        ids = raw[name]
        if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
            raise DatasetError(f"{path}: splits.{name} must be a list of id strings")
        splits[name] = ids
    return splits


def _check_counts(document: dict[str, Any], splits: dict[str, list[str]], path: Path) -> None:
    counts = _require_key(document, "counts", dict, path)
    actual = {name: len(splits[name]) for name in SPLIT_NAMES}
    if counts != actual:
        raise DatasetError(
            f"{path}: counts {counts} do not match the id lists {actual}; the file was edited "
            "by hand, regenerate it instead"
        )


def _require_key(document: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(
            f"{path}: key {key!r} is missing or not a {kind.__name__}; regenerate the file"
        )
    return value


def _changed_dataset_message(missing: list[str], unassigned: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} id(s) in the split are not in the data, e.g. "
                     f"{missing[:_MAX_LISTED_IDS]}")
    if unassigned:
        parts.append(f"{len(unassigned)} conversation(s) are in no split, e.g. "
                     f"{unassigned[:_MAX_LISTED_IDS]}")
    return (
        "; ".join(parts) + ". The dataset changed since the split was made; regenerate the "
        "split with `python -m pipelines.datasets.splits <name> --force` and retrain"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Create (or with --force, replace) the stored split of a named dataset."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.datasets.splits",
        description="Store a seeded train/validation/test split by conversation as "
        "<directory>/<name>.json.",
    )
    parser.add_argument("name", choices=sorted(DATASET_LOADERS), help="dataset to split")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed of the shuffle (default {DEFAULT_SEED})")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing split file")
    parser.add_argument("--directory", type=Path, default=SPLITS_DIR,
                        help=f"directory of the split files (default {SPLITS_DIR})")
    arguments = parser.parse_args(argv)

    path = split_file_path(arguments.name, arguments.directory)
    if path.exists() and not arguments.force:
        parser.error(f"{path} exists; pass --force to replace it")

    conversations = DATASET_LOADERS[arguments.name]()
    splits = make_splits([conversation.id for conversation in conversations],
                         seed=arguments.seed)
    save_splits(splits, path, seed=arguments.seed)
    counts = ", ".join(f"{name} {len(splits[name])}" for name in SPLIT_NAMES)
    print(f"wrote {path}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
