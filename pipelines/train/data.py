"""Load the corpora of a training run and any evaluation file, whatever its format."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.datasets.goemotions import read_goemotions
from pipelines.datasets.paths import (
    BUNDLED_USS_FILES,
    GOEMOTIONS_DIR,
    USS_DIR,
    goemotions_file,
)
from pipelines.datasets.splits import (
    ensure_splits,
    make_splits,
    split_conversations,
    split_file_path,
)
from pipelines.datasets.uss import read_bundled_uss, read_uss
from pipelines.train.labels import customer_ratings
from pipelines.train.run import TrainingData, fingerprint_files
from pipelines.train.similar import MIN_RESOLVED_SATISFACTION, is_resolved_case
from serving.errors import DatasetError
from serving.schema import SENTIMENT_CLASSES, Conversation, Role, Sentiment, read_conversations

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


def load_training_files(message_files: Sequence[Path], conversation_files: Sequence[Path], *,
                        seed: int, dissatisfied_rating: int) -> TrainingData:
    """Read the user's labelled messages and conversations and split each 80/10/10 by id.

    Message files need `labels.sentiment` and `labels.frustration` on customer turns.
    Conversation files need `labels.satisfaction` ratings on customer turns, and some of the
    training conversations need `labels.overall_satisfaction` of 3 or more for the similar
    cases. Any format `read_any` reads is accepted. This is how a bundle is trained on another
    language. The split is made in memory from `seed`, and the files' sha256 in the
    fingerprint identify the data.
    """
    from pipelines.cli_common import read_data_files

    message_rows = read_data_files(message_files, option="--messages")
    conversation_rows = read_data_files(conversation_files, option="--conversations")
    for rows, option, files in ((message_rows, "--messages", message_files),
                                (conversation_rows, "--conversations", conversation_files)):
        if not rows:
            raise DatasetError(f"the {option} files {[str(path) for path in files]} contain no "
                               "conversations; pass files with labelled conversations")
    _check_frustration_labelled(message_rows, message_files)

    messages = split_conversations(*_with_splits(message_rows, seed))
    conversations = split_conversations(*_with_splits(conversation_rows, seed))
    _check_resolved_cases(conversations["train"], conversation_files)
    for role, rows in messages.items():
        _check_messages(rows, role, message_files)
    for role, rows in conversations.items():
        _check_ratings(rows, role, conversation_files, dissatisfied_rating)

    fingerprint = {
        # Keyed by the path as given, because two inputs may share a file name.
        "files": {str(path): fingerprint_files([path])[path.name]
                  for path in [*message_files, *conversation_files]},
        # Absolute paths by role, so `escalation evaluate` can rebuild the same test split.
        "inputs": {
            "messages": [str(path.resolve()) for path in message_files],
            "conversations": [str(path.resolve()) for path in conversation_files],
        },
        "split_seed": seed,
        "counts": {
            **{f"messages_{role}": len(rows) for role, rows in messages.items()},
            **{f"conversations_{role}": len(rows) for role, rows in conversations.items()},
        },
    }
    logger.info("read %d message and %d conversation records for training from %d files",
                sum(map(len, messages.values())), sum(map(len, conversations.values())),
                len(message_files) + len(conversation_files))
    return TrainingData(messages=messages, conversations=conversations, fingerprint=fingerprint)


def recorded_test_split(bundle_name: str, training_data: dict[str, Any], *,
                        dissatisfied_rating: int) -> list[Conversation] | None:
    """Return the test split of the user's files a bundle was trained on, or None.

    None means the bundle was trained on the bundled corpora, whose test splits the caller
    reads itself. A bundle trained on the user's files needs the test split of those files,
    because the bundled corpora are English. The split is rebuilt from the recorded paths and
    split seed, and only while every file's sha256 still matches the manifest.
    """
    if "split_seed" not in training_data:
        return None
    inputs = training_data.get("inputs")
    if not isinstance(inputs, dict):
        raise DatasetError(
            f"bundle {bundle_name} was trained on your own files, and its manifest does not "
            "record which were message and which conversation files; pass the test data "
            "with --data"
        )

    recorded = training_data.get("files", {})
    hashes = {str(Path(path).resolve()): digest for path, digest in recorded.items()}
    paths = {role: [Path(path) for path in inputs.get(role, [])]
             for role in ("messages", "conversations")}
    for path in paths["messages"] + paths["conversations"]:
        _check_recorded_file(bundle_name, path, hashes.get(str(path)))

    data = load_training_files(paths["messages"], paths["conversations"],
                               seed=int(training_data["split_seed"]),
                               dissatisfied_rating=dissatisfied_rating)
    logger.info("evaluating bundle %s on the test split of its %d training files", bundle_name,
                len(paths["messages"]) + len(paths["conversations"]))
    return data.messages["test"] + data.conversations["test"]


def _check_recorded_file(bundle_name: str, path: Path, expected: str | None) -> None:
    if not path.is_file():
        raise DatasetError(
            f"bundle {bundle_name} was trained on {path}, which no longer exists; pass the "
            "test data with --data"
        )
    actual = fingerprint_files([path])[path.name]
    if expected is not None and actual != expected:
        raise DatasetError(
            f"{path} changed since bundle {bundle_name} was trained on it (sha256 {actual[:12]} "
            f"against {expected[:12]} in the manifest), so its test split cannot be rebuilt; "
            "pass the test data with --data"
        )


def _with_splits(rows: list[Conversation],
                 seed: int) -> tuple[list[Conversation], dict[str, list[str]]]:
    return rows, make_splits([row.id for row in rows], seed=seed)


def _check_messages(rows: list[Conversation], role: str, files: Sequence[Path]) -> None:
    sentiments: set[Sentiment] = set()
    frustration: set[bool] = set()
    for turn in (turn for row in rows for turn in row.turns):
        if turn.role is Role.CUSTOMER and turn.labels is not None \
                and turn.labels.sentiment is not None:
            sentiments.add(turn.labels.sentiment)
            frustration.add(bool(turn.labels.frustration))
    missing = [label.value for label in SENTIMENT_CLASSES if label not in sentiments]
    missing += [f"frustration {value}" for value in (True, False) if value not in frustration]
    if missing:
        raise DatasetError(
            f"the {role} split of the message files {[str(path) for path in files]} has no "
            f"customer turn labelled {', '.join(missing)}; every split needs each sentiment and "
            "both frustration values, so add labelled messages"
        )


def _check_frustration_labelled(rows: list[Conversation], files: Sequence[Path]) -> None:
    # The message heads read a missing frustration label as "not frustrated", so a turn with a
    # sentiment but no frustration label would be trained as a negative example.
    unlabelled = [(row.id, index) for row in rows for index, turn in enumerate(row.turns)
                  if turn.role is Role.CUSTOMER and turn.labels is not None
                  and turn.labels.sentiment is not None and turn.labels.frustration is None]
    if unlabelled:
        conversation_id, index = unlabelled[0]
        raise DatasetError(
            f"{len(unlabelled)} customer turns in the --messages files "
            f"{[str(path) for path in files]} have labels.sentiment but no labels.frustration, "
            f"the first in conversation {conversation_id!r}, turn {index}; label both or neither"
        )


def _check_resolved_cases(rows: list[Conversation], files: Sequence[Path]) -> None:
    # The similar-case index of the handoff package is built from resolved training
    # conversations; checking here fails before minutes of training instead of after.
    if not any(is_resolved_case(row) for row in rows):
        raise DatasetError(
            f"the train split of the --conversations files {[str(path) for path in files]} has "
            f"no resolved case: labels.overall_satisfaction {MIN_RESOLVED_SATISFACTION} or "
            "higher, customer text and an assistant message. The handoff package's similar "
            "cases come from them, so add overall ratings"
        )


def _check_ratings(rows: list[Conversation], role: str, files: Sequence[Path],
                   dissatisfied_rating: int) -> None:
    ratings = [rating for row in rows for rating in customer_ratings(row) if rating is not None]
    low = sum(rating <= dissatisfied_rating for rating in ratings)
    if low == 0 or low == len(ratings):
        raise DatasetError(
            f"the {role} split of the conversation files {[str(path) for path in files]} has "
            f"{len(ratings)} rated customer turns, {low} of them rated {dissatisfied_rating} "
            "or lower; the escalation head needs both satisfied and dissatisfied turns in "
            "every split, so add rated conversations"
        )


def read_any(path: str | Path) -> list[Conversation]:
    """Read conversations from JSON Lines, a USS `.txt[.gz]` file or a GoEmotions `.tsv[.gz]`.

    The format is taken from the file name, so held-out files of the original corpora can be
    evaluated without conversion.
    """
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".jsonl") or name.endswith(".json"):
        if path.name.lower().endswith(".gz"):
            raise ValueError(f"{path}: compressed JSON Lines are not read; decompress the file "
                             "with gunzip and pass the .jsonl file")
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
