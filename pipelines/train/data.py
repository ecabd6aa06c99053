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
    ids_fingerprint,
    make_splits,
    split_conversations,
    split_file_path,
)
from pipelines.datasets.uss import read_bundled_uss, read_uss
from pipelines.train.labels import customer_ratings
from pipelines.train.run import TrainingData, fingerprint_files
from pipelines.train.similar import MIN_RESOLVED_SATISFACTION, is_resolved_case
from serving.errors import DatasetError
from serving.hashing import sha256_file
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

    digests = {path: sha256_file(path) for path in [*message_files, *conversation_files]}
    fingerprint = {
        # Keyed by the path as given, because two inputs may share a file name.
        "files": {str(path): digest for path, digest in digests.items()},
        # Absolute paths (symlinks resolved) and hashes by role, and the test ids, so that
        # `escalation evaluate` can rebuild the same test split from any folder.
        "inputs": {
            "messages": _input_entries(message_files, digests),
            "conversations": _input_entries(conversation_files, digests),
            "test_ids_sha256": ids_fingerprint(
                [row.id for row in messages["test"] + conversations["test"]]),
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
    split seed, only while every file's sha256 still matches the manifest, and its ids must
    match the recorded test ids.
    """
    if not training_data.get("files"):
        raise DatasetError(f"the manifest of bundle {bundle_name} records no training data, "
                           "so its test split is unknown; pass the test data with --data")
    if "split_seed" not in training_data:
        return None

    inputs = _recorded_inputs(bundle_name, training_data)
    seed = training_data["split_seed"]
    if type(seed) is not int:
        raise _manifest_error(bundle_name, "split_seed", seed, "an integer")
    for path, digest in inputs["messages"] + inputs["conversations"]:
        _check_recorded_file(bundle_name, path, digest)

    data = load_training_files([path for path, _ in inputs["messages"]],
                               [path for path, _ in inputs["conversations"]],
                               seed=seed, dissatisfied_rating=dissatisfied_rating)
    test = data.messages["test"] + data.conversations["test"]
    if ids_fingerprint([row.id for row in test]) != training_data["inputs"]["test_ids_sha256"]:
        raise DatasetError(
            f"the test split rebuilt for bundle {bundle_name} differs from the one it was "
            "trained beside, so the manifest's split_seed or test ids were edited; restore "
            "them or pass the test data with --data"
        )
    logger.info("evaluating bundle %s on the test split of its %d training files", bundle_name,
                len(inputs["messages"]) + len(inputs["conversations"]))
    return test


def training_files_among(training_data: dict[str, Any], paths: Sequence[Path]) -> list[Path]:
    """Return those of `paths` whose sha256 equals a file the bundle was trained on.

    Such a file contains training conversations too, so metrics on it are optimistic.
    """
    recorded = {digest for digest in training_data.get("files", {}).values()
                if isinstance(digest, str)}
    return [path for path in paths if sha256_file(path) in recorded]


def check_bundled_split(bundle_name: str, training_data: dict[str, Any],
                        splits_name: str) -> None:
    """Check that the stored split file `splits_name` is the one the bundle was trained with.

    Without this, a configuration naming another split would create a new split file, whose
    test conversations may be the bundle's training conversations.
    """
    path = split_file_path(splits_name)
    recorded = training_data.get("files", {})
    trained_with = sorted(name for name in recorded if name.endswith(".json"))
    if path.name not in recorded:
        raise DatasetError(
            f"bundle {bundle_name} was trained with the split file(s) {trained_with}, not "
            f"{path.name}; evaluate with the configuration it was trained with, or pass the "
            "test data with --data"
        )
    if not path.is_file():
        raise DatasetError(f"split file {path} not found, so the test split of bundle "
                           f"{bundle_name} is unknown; restore it or pass the test data with "
                           "--data")
    actual = sha256_file(path)
    if actual != recorded[path.name]:
        raise DatasetError(
            f"{path} changed since bundle {bundle_name} was trained (sha256 {actual[:12]} "
            f"against {recorded[path.name][:12]}), so its test split may contain training "
            "conversations; restore the file or pass the test data with --data"
        )


def _recorded_inputs(bundle_name: str,
                     training_data: dict[str, Any]) -> dict[str, list[tuple[Path, str]]]:
    inputs = training_data.get("inputs")
    if not isinstance(inputs, dict):
        raise DatasetError(
            f"bundle {bundle_name} was trained on your own files, and its manifest does not "
            "record which were message and which conversation files; pass the test data "
            "with --data"
        )
    if not isinstance(inputs.get("test_ids_sha256"), str):
        raise _manifest_error(bundle_name, "inputs.test_ids_sha256",
                              inputs.get("test_ids_sha256"), "a sha256 hex string")

    recorded: dict[str, list[tuple[Path, str]]] = {}
    for role in ("messages", "conversations"):
        entries = inputs.get(role)
        if not isinstance(entries, list) or not entries:
            raise _manifest_error(bundle_name, f"inputs.{role}", entries,
                                  "a non-empty list of {path, sha256} objects")
        recorded[role] = []
        for entry in entries:
            if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                    and isinstance(entry.get("sha256"), str)):
                raise _manifest_error(bundle_name, f"inputs.{role}", entry,
                                      "{path, sha256} objects with string values")
            recorded[role].append((Path(entry["path"]), entry["sha256"]))
    return recorded


def _manifest_error(bundle_name: str, field: str, value: Any, expected: str) -> DatasetError:
    return DatasetError(f"the manifest of bundle {bundle_name} has an invalid "
                        f"training_data.{field} {value!r}; expected {expected}. Restore the "
                        "manifest from training, or pass the test data with --data")


def _check_recorded_file(bundle_name: str, path: Path, expected: str) -> None:
    if not path.exists():
        raise DatasetError(
            f"bundle {bundle_name} was trained on {path}, which no longer exists; pass the "
            "test data with --data"
        )
    if not path.is_file():
        raise DatasetError(
            f"bundle {bundle_name} was trained on the file {path}, which is now not a regular "
            "file; pass the test data with --data"
        )
    actual = sha256_file(path)
    if actual != expected:
        raise DatasetError(
            f"{path} changed since bundle {bundle_name} was trained on it (sha256 {actual[:12]} "
            f"against {expected[:12]} in the manifest), so its test split cannot be rebuilt; "
            "pass the test data with --data"
        )


def _input_entries(paths: Sequence[Path], digests: dict[Path, str]) -> list[dict[str, str]]:
    return [{"path": str(path.resolve()), "sha256": digests[path]} for path in paths]


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
