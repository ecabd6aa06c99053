"""Token handoff model: a folder of the TF-IDF token encoder, an ONNX head and a JSON manifest.

`pipelines.train.tokens_bundle` writes the folder. Serving loads it with numpy and onnxruntime
only: the manifest lists the turn sequence feature names in order, the decision threshold, the
encoder settings and the sha256 of every file, and `TokenModel.load` checks all of them before
it scores a turn.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import BundleIntegrityError, FeatureSchemaError, TokenModelError
from serving.features import SparseFeatureRow, conversation_turn_rows, turn_feature_names
from serving.hashing import sha256_file
from serving.heads import Head
from serving.schema import Conversation
from serving.token_encoder import IDF_FILE, SETTINGS_FILE, TokenEncoder, load_token_encoder

logger = logging.getLogger(__name__)

TOKEN_MODEL_FORMAT = "1"
TOKEN_MODEL_KIND = "tokens"
MANIFEST_FILE = "token_model.json"
HEAD_FILE = "head.onnx"
REQUIRED_FILES: tuple[str, ...] = (SETTINGS_FILE, IDF_FILE, HEAD_FILE)


@dataclass(frozen=True)
class TokenModelManifest:
    """The parsed manifest of a token model folder."""

    feature_names: list[str]
    threshold: float
    files: dict[str, str]
    encoder: dict[str, Any]
    training: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON-serialisable values, in the layout `read_manifest` reads."""
        return {
            "format": TOKEN_MODEL_FORMAT,
            "kind": TOKEN_MODEL_KIND,
            "threshold": self.threshold,
            "files": dict(sorted(self.files.items())),
            "encoder": self.encoder,
            "training": self.training,
            "feature_names": self.feature_names,
        }


def encoder_summary(encoder: TokenEncoder) -> dict[str, Any]:
    """Return the encoder settings the manifest repeats: everything but the vocabulary, plus its
    size, so a reader sees how the text was encoded without opening the encoder file."""
    summary = {key: value for key, value in encoder.settings().items() if key != "vocabulary"}
    summary["vocabulary_size"] = len(encoder.vocabulary)
    return summary


def write_manifest(manifest: TokenModelManifest, folder: Path) -> Path:
    """Write `manifest` as MANIFEST_FILE into `folder` and return its path."""
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_dict(), indent=1, ensure_ascii=False),
                    encoding="utf-8")
    return path


def read_manifest(folder: Path) -> TokenModelManifest:
    """Parse the manifest of `folder`.

    Raises TokenModelError naming the invalid key and its value, or the missing file.
    """
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise TokenModelError(f"token model manifest {path} not found; pass a folder written by "
                              "`escalation benchmark mhch --save-model DIR`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TokenModelError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); "
                              "write the model folder again") from None
    if not isinstance(data, dict):
        raise TokenModelError(f"{path} contains a JSON {type(data).__name__}, expected an object")

    _expect(data.get("format") == TOKEN_MODEL_FORMAT, path,
            f"format {data.get('format')!r}, this code reads {TOKEN_MODEL_FORMAT!r}")
    _expect(data.get("kind") == TOKEN_MODEL_KIND, path,
            f"kind {data.get('kind')!r}, expected {TOKEN_MODEL_KIND!r}; MiniLM bundles load "
            "with serving.bundle")
    threshold: Any = data.get("threshold")
    _expect(isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
            and math.isfinite(threshold) and 0.0 <= threshold <= 1.0, path,
            f"threshold {threshold!r}, expected a number in [0, 1]")
    files: Any = data.get("files")
    _expect(isinstance(files, dict) and all(isinstance(name, str) and isinstance(digest, str)
                                            for name, digest in files.items()), path,
            "files that are not an object of file name to sha256")
    names: Any = data.get("feature_names")
    _expect(isinstance(names, list) and all(isinstance(name, str) for name in names), path,
            "feature_names that are not a list of strings")
    encoder: Any = data.get("encoder")
    _expect(isinstance(encoder, dict), path, "encoder settings that are not an object")
    training: Any = data.get("training", {})
    _expect(isinstance(training, dict), path, "training details that are not an object")
    return TokenModelManifest(list(names), float(threshold), dict(files), dict(encoder),
                              dict(training))


class TokenModel:
    """A loaded token model: per-turn handoff probabilities and decisions for conversations.

    Features come from `serving.features.conversation_turn_rows`, the function that built the
    training rows, so a turn gets the same row here as in training.
    """

    def __init__(self, folder: Path, manifest: TokenModelManifest, encoder: TokenEncoder,
                 head: Head) -> None:
        self.folder = folder
        self.manifest = manifest
        self.encoder = encoder
        self.head = head
        self.threshold = manifest.threshold
        self.text_width = len(encoder.vocabulary)

    @classmethod
    def load(cls, folder: str | Path) -> TokenModel:
        """Load and check a token model folder.

        Raises TokenModelError for a missing or malformed manifest, BundleIntegrityError for a
        missing file or a sha256 mismatch, and FeatureSchemaError when the feature names or
        the head's input width differ from what this code computes.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        _verify_files(folder, manifest.files)
        # The encoder's arrays are the folder's only .npy files, so each one it reads is hashed.
        arrays = [name for name in manifest.files if name.endswith(".npy")]
        encoder = load_token_encoder(folder, expected_arrays=arrays)
        _verify_encoder(folder, manifest, encoder)
        _verify_feature_names(folder, manifest.feature_names, len(encoder.vocabulary))

        head = Head(folder / HEAD_FILE)
        if head.n_features != len(manifest.feature_names):
            raise FeatureSchemaError(
                f"token model {folder}: {HEAD_FILE} takes {head.n_features} features but the "
                f"manifest lists {len(manifest.feature_names)}; write the model folder again")
        logger.info("loaded token model %s (%d terms, %d features, threshold %.4f)", folder,
                    len(encoder.vocabulary), head.n_features, manifest.threshold)
        return cls(folder, manifest, encoder, head)

    def feature_rows(self, conversation: Conversation) -> list[SparseFeatureRow]:
        """Return the turn sequence feature row of every turn of `conversation`, in order."""
        encoded = self.encoder.transform_sparse([turn.text for turn in conversation.turns])
        vectors = [encoded.row(index) for index in range(encoded.n_rows)]
        return conversation_turn_rows(conversation, vectors, self.text_width)

    def feature_matrix(self, conversation: Conversation) -> np.ndarray:
        """Return the feature rows of every turn as a dense float32 [n_turns, n_features] array."""
        rows = self.feature_rows(conversation)
        matrix = np.zeros((len(rows), len(self.manifest.feature_names)), dtype=np.float32)
        for index, row in enumerate(rows):
            matrix[index, row.indices] = row.values
        return matrix

    def score_turns(self, conversation: Conversation) -> np.ndarray:
        """Return P(handoff) of every turn of `conversation` as a float32 array, in turn order.

        Each turn's probability depends only on it and the turns before it.
        """
        probabilities = self.head.predict_proba(self.feature_matrix(conversation))
        return probabilities[:, 1]

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Return True for each probability at or above the model's threshold."""
        return np.asarray(probabilities) >= self.threshold


def _expect(condition: bool, path: Path, found: str) -> None:
    if not condition:
        raise TokenModelError(f"{path} has {found}; write the model folder again")


def _verify_files(folder: Path, files: dict[str, str]) -> None:
    missing_entries = [name for name in REQUIRED_FILES if name not in files]
    if missing_entries:
        raise BundleIntegrityError(
            f"token model {folder}: the manifest has no sha256 for {', '.join(missing_entries)}; "
            "write the model folder again")
    for name, expected in sorted(files.items()):
        if Path(name).name != name:
            raise BundleIntegrityError(f"token model {folder}: the manifest lists {name!r}; "
                                       "expected a plain file name inside the folder")
        path = folder / name
        if not path.is_file():
            raise BundleIntegrityError(f"token model {folder}: {name} not found; copy the whole "
                                       "folder")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleIntegrityError(
                f"token model {folder}: {name} has sha256 {actual[:12]}..., the manifest "
                f"expects {expected[:12]}...; the file was changed or damaged, copy the folder "
                "again")


def _verify_encoder(folder: Path, manifest: TokenModelManifest, encoder: TokenEncoder) -> None:
    if encoder.projection is not None:
        raise FeatureSchemaError(f"token model {folder}: the encoder has a projection, but the "
                                 "turn sequence features need the sparse TF-IDF columns")
    actual = encoder_summary(encoder)
    differing = sorted(key for key in set(actual) | set(manifest.encoder)
                       if actual.get(key) != manifest.encoder.get(key))
    if differing:
        raise TokenModelError(
            f"token model {folder}: encoder settings {', '.join(differing)} in {MANIFEST_FILE} "
            f"differ from {SETTINGS_FILE}; write the model folder again")


def _verify_feature_names(folder: Path, names: list[str], text_width: int) -> None:
    expected = turn_feature_names(text_width)
    if names == expected:
        return
    if len(names) != len(expected):
        raise FeatureSchemaError(
            f"token model {folder}: the manifest lists {len(names)} features, this code computes "
            f"{len(expected)} for {text_width} encoder terms; retrain the model with this code")
    position = next(index for index, (got, want) in enumerate(zip(names, expected, strict=True))
                    if got != want)
    raise FeatureSchemaError(
        f"token model {folder}: feature {position} is {names[position]!r} in the manifest but "
        f"{expected[position]!r} in this code; retrain the model with this code")
