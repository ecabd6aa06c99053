"""Language-agnostic text encoder: TF-IDF over word or character n-grams, in numpy only.

The encoder needs no pretrained model, so it serves any language and corpora whose words are
opaque ids (such as MHCH-DAMI, where each word is `w<id>`). Training fits it with
scikit-learn's TfidfVectorizer and exports the vocabulary and idf weights. This module
reproduces that vectorizer's transform from plain files: `token_encoder.json` (settings and
vocabulary), `token_encoder_idf.npy` and, with a projection, `token_encoder_projection.npy`.
Nothing is unpickled, because arrays are read with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from serving.errors import BundleError

logger = logging.getLogger(__name__)

TOKEN_ENCODER_FORMAT = "1"
SETTINGS_FILE = "token_encoder.json"
IDF_FILE = "token_encoder_idf.npy"
PROJECTION_FILE = "token_encoder_projection.npy"

Analyzer = Literal["word", "char_wb"]
ANALYZERS: tuple[str, ...] = ("word", "char_wb")
# scikit-learn's default pattern keeps tokens of two or more word characters.
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"

_WHITESPACE = re.compile(r"\s\s+")


@dataclass(frozen=True)
class TokenMatrix:
    """Rows of encoded texts in compressed sparse row form (numpy arrays only).

    Row i contains `data[indptr[i]:indptr[i + 1]]` at the columns
    `indices[indptr[i]:indptr[i + 1]]`, the layout of scipy.sparse.csr_matrix, so training can
    wrap it without copying.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_columns: int

    @property
    def n_rows(self) -> int:
        """Number of encoded texts."""
        return int(self.indptr.shape[0] - 1)

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the column indices and values of one row."""
        start, stop = int(self.indptr[index]), int(self.indptr[index + 1])
        return self.indices[start:stop], self.data[start:stop]

    def toarray(self) -> np.ndarray:
        """Return the rows as a dense float32 array of shape [n_rows, n_columns]."""
        dense = np.zeros((self.n_rows, self.n_columns), dtype=np.float32)
        for index in range(self.n_rows):
            columns, values = self.row(index)
            dense[index, columns] = values
        return dense


class TokenEncoder:
    """Turn texts into L2-normalised TF-IDF vectors, optionally projected to a dense space.

    `vocabulary` lists the n-gram of each column in order and `idf` contains one weight per
    column. Term counts become `1 + log(count)` when `sublinear_tf` is set, are multiplied by
    idf and normalised to unit L2 length, as scikit-learn's TfidfVectorizer does with
    `norm="l2"`. With a `projection` of shape [vocabulary size, dimension] the output is the
    TF-IDF row times the projection (for example TruncatedSVD components or word embeddings
    aligned to the vocabulary), L2-normalised again.
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        idf: np.ndarray,
        *,
        analyzer: Analyzer = "word",
        ngram_range: tuple[int, int] = (1, 1),
        lowercase: bool = True,
        token_pattern: str = DEFAULT_TOKEN_PATTERN,
        sublinear_tf: bool = False,
        projection: np.ndarray | None = None,
    ) -> None:
        _check_settings(analyzer, ngram_range, token_pattern)
        self.vocabulary = list(vocabulary)
        if not all(isinstance(term, str) for term in self.vocabulary):
            raise ValueError("vocabulary contains a term that is not a string; each column "
                             "needs its n-gram as text")
        self.columns = {term: index for index, term in enumerate(self.vocabulary)}
        if len(self.columns) != len(self.vocabulary):
            raise ValueError("vocabulary contains duplicate terms; each column needs a unique "
                             "n-gram")
        self.idf = _real_array(idf, "idf").reshape(-1)
        if self.idf.shape[0] != len(self.vocabulary):
            raise ValueError(f"idf has {self.idf.shape[0]} weights for a vocabulary of "
                             f"{len(self.vocabulary)} terms; they must have the same length")
        if not np.all(self.idf > 0.0):
            raise ValueError("idf contains a weight that is zero or negative; TF-IDF weights "
                             "are positive, refit the token encoder")
        if projection is not None:
            projection = _real_array(projection, "projection")
            if projection.ndim != 2 or projection.shape[0] != len(self.vocabulary):
                raise ValueError(f"projection has shape {list(projection.shape)}; expected "
                                 f"[{len(self.vocabulary)}, dimension]")
        self.projection = projection
        self.analyzer: Analyzer = analyzer
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.sublinear_tf = sublinear_tf
        # NOTE: the pattern comes from the bundle and runs on every text. A pattern with nested
        # quantifiers can backtrack for minutes on a long text, and nothing bounds that here.
        self._pattern = re.compile(token_pattern)

    @property
    def dimension(self) -> int:
        """Width of each output row: the vocabulary size, or the projection's dimension."""
        if self.projection is not None:
            return int(self.projection.shape[1])
        return len(self.vocabulary)

    def analyze(self, text: str) -> list[str]:
        """Split one text into the n-grams the vocabulary is made of, in text order."""
        if self.lowercase:
            text = text.lower()
        if self.analyzer == "word":
            return _word_ngrams(self._pattern.findall(text), self.ngram_range)
        return _char_wb_ngrams(text, self.ngram_range)

    def transform_sparse(self, texts: Sequence[str]) -> TokenMatrix:
        """Encode texts as sparse TF-IDF rows over the vocabulary (the projection is not applied).

        Terms outside the vocabulary are ignored, so a text without known terms is a zero row.
        """
        batch = _check_texts(texts)
        indptr = np.zeros(len(batch) + 1, dtype=np.int64)
        all_columns: list[np.ndarray] = []
        all_values: list[np.ndarray] = []
        for position, text in enumerate(batch):
            columns, values = self._encode_one(text)
            all_columns.append(columns)
            all_values.append(values)
            indptr[position + 1] = indptr[position] + columns.shape[0]

        indices = np.concatenate(all_columns) if all_columns else np.zeros(0, dtype=np.int64)
        data = np.concatenate(all_values) if all_values else np.zeros(0, dtype=np.float32)
        return TokenMatrix(indptr, indices, data, len(self.vocabulary))

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts as a dense float32 array of shape [len(texts), dimension]."""
        matrix = self.transform_sparse(texts)
        if self.projection is None:
            return matrix.toarray()

        projected = np.zeros((matrix.n_rows, self.dimension), dtype=np.float64)
        for index in range(matrix.n_rows):
            columns, values = matrix.row(index)
            projected[index] = values.astype(np.float64) @ self.projection[columns]
        return _l2_normalise(projected).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts as dense rows, the interface the scorer calls on every text encoder."""
        return self.transform(texts)

    def _encode_one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        counts: dict[int, int] = {}
        for term in self.analyze(text):
            column = self.columns.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)

        columns = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
        tf = np.asarray([counts[column] for column in columns], dtype=np.float64)
        if self.sublinear_tf:
            tf = 1.0 + np.log(tf)
        weights = tf * self.idf[columns]
        norm = float(np.sqrt(np.dot(weights, weights)))
        if norm > 0.0:
            weights = weights / norm
        return columns, weights.astype(np.float32)

    def settings(self) -> dict[str, Any]:
        """Return the JSON-serialisable settings and vocabulary, without the arrays."""
        return {
            "format": TOKEN_ENCODER_FORMAT,
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "lowercase": self.lowercase,
            "token_pattern": self.token_pattern,
            "sublinear_tf": self.sublinear_tf,
            "norm": "l2",
            "idf": IDF_FILE,
            "projection": PROJECTION_FILE if self.projection is not None else None,
            "vocabulary": self.vocabulary,
        }

    def save(self, directory: Path) -> list[str]:
        """Write the encoder's files into `directory` and return their names."""
        directory.mkdir(parents=True, exist_ok=True)
        settings = self.settings()
        (directory / SETTINGS_FILE).write_text(json.dumps(settings, ensure_ascii=False),
                                               encoding="utf-8")
        np.save(directory / IDF_FILE, self.idf, allow_pickle=False)
        names = [SETTINGS_FILE, IDF_FILE]
        if self.projection is not None:
            np.save(directory / PROJECTION_FILE, self.projection, allow_pickle=False)
            names.append(PROJECTION_FILE)
        return names


def load_token_encoder(directory: str | Path,
                       expected_arrays: Sequence[str] | None = None) -> TokenEncoder:
    """Read a token encoder written by `TokenEncoder.save` from `directory`.

    `expected_arrays` lists the array files a bundle manifest hashed. The settings must name
    exactly those, so no file that escaped the hash check is read. Raises BundleError naming
    the file when a file is missing, malformed or inconsistent.
    """
    directory = Path(directory)
    path = directory / SETTINGS_FILE
    if not path.is_file():
        raise BundleError(f"token encoder settings {path} not found; train a bundle with "
                          "encoder.kind: tokens or refit the encoder")
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BundleError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); "
                          "refit the token encoder") from None
    if not isinstance(settings, dict) or settings.get("format") != TOKEN_ENCODER_FORMAT:
        found = settings.get("format") if isinstance(settings, dict) else None
        raise BundleError(f"{path} has token encoder format {found!r}, this code reads "
                          f"{TOKEN_ENCODER_FORMAT!r}; refit the token encoder")
    _check_settings_file(settings, path)

    projection_name = settings["projection"]
    named = [settings["idf"]] + ([projection_name] if projection_name else [])
    if expected_arrays is not None and sorted(named) != sorted(expected_arrays):
        raise BundleError(f"{path} names the arrays {named}, but the manifest hashed "
                          f"{list(expected_arrays)}; the bundle was edited, retrain it")
    idf = _load_array(directory, settings["idf"], path)
    projection = _load_array(directory, projection_name, path) if projection_name else None
    try:
        encoder = TokenEncoder(
            settings["vocabulary"],
            idf,
            analyzer=settings["analyzer"],
            ngram_range=tuple(settings["ngram_range"]),  # type: ignore[arg-type]
            lowercase=settings["lowercase"],
            token_pattern=settings["token_pattern"],
            sublinear_tf=settings["sublinear_tf"],
            projection=projection,
        )
    except (TypeError, ValueError, re.error) as error:
        raise BundleError(f"{path} does not describe a valid token encoder ({error}); refit "
                          "the token encoder") from None

    logger.info("loaded token encoder %s (%s n-grams %s, %d terms, dimension %d)", directory,
                encoder.analyzer, encoder.ngram_range, len(encoder.vocabulary), encoder.dimension)
    return encoder


# The type each key of the settings file must have; bool("false") would be True.
_SETTING_TYPES: dict[str, type | tuple[type, ...]] = {
    "analyzer": str, "ngram_range": list, "lowercase": bool, "token_pattern": str,
    "sublinear_tf": bool, "norm": str, "idf": str, "projection": (str, type(None)),
    "vocabulary": list,
}


def _check_settings_file(settings: dict[str, Any], path: Path) -> None:
    for key, expected in _SETTING_TYPES.items():
        if key not in settings:
            raise BundleError(f"{path} is missing the key {key!r}; refit the token encoder")
        if not isinstance(settings[key], expected):
            raise BundleError(f"{path}: {key} is {settings[key]!r}, of type "
                              f"{type(settings[key]).__name__}; refit the token encoder")
    if settings["norm"] != "l2":
        raise BundleError(f"{path}: norm is {settings['norm']!r}, this code computes only "
                          "'l2'; refit the token encoder")


def _load_array(directory: Path, name: Any, settings_path: Path) -> np.ndarray:
    if not isinstance(name, str) or Path(name).name != name:
        raise BundleError(f"{settings_path} names the array file {name!r}; expected a plain file "
                          "name inside the same folder")
    path = directory / name
    if not path.is_file():
        raise BundleError(f"token encoder array {path} not found; copy the whole folder or "
                          "refit the token encoder")
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except ValueError as error:
        raise BundleError(f"token encoder array {path} could not be read ({error}); refit the "
                          "token encoder") from None


def _check_settings(analyzer: str, ngram_range: tuple[int, int], token_pattern: str) -> None:
    if analyzer not in ANALYZERS:
        raise ValueError(f"analyzer {analyzer!r} is invalid; use one of {', '.join(ANALYZERS)}")
    if (len(ngram_range) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in ngram_range)
            or not 1 <= ngram_range[0] <= ngram_range[1]):
        raise ValueError(f"ngram_range {ngram_range!r} is invalid; use two integers "
                         "(min_n, max_n) with 1 <= min_n <= max_n")
    # With two or more groups re.findall returns tuples, not tokens; scikit-learn rejects
    # such patterns too.
    if re.compile(token_pattern).groups > 1:
        raise ValueError(f"token_pattern {token_pattern!r} has more than one capturing group; "
                         "use at most one, or non-capturing groups (?:...)")


def _real_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} has dtype {array.dtype}; expected real numbers")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; refit the token encoder")
    return array


def _check_texts(texts: Sequence[str]) -> list[str]:
    # A bare str is a Sequence[str] too and would be encoded one character at a time.
    if isinstance(texts, str):
        raise TypeError("expected a sequence of strings but got one str; wrap it in a list")
    batch = list(texts)
    for index, text in enumerate(batch):
        if not isinstance(text, str):
            raise TypeError(f"item {index} is {type(text).__name__}, expected str")
    return batch


def _word_ngrams(tokens: list[str], ngram_range: tuple[int, int]) -> list[str]:
    low, high = ngram_range
    grams: list[str] = []
    for size in range(low, min(high, len(tokens)) + 1):
        grams.extend(" ".join(tokens[start:start + size])
                     for start in range(len(tokens) - size + 1))
    return grams


def _char_wb_ngrams(text: str, ngram_range: tuple[int, int]) -> list[str]:
    # Character n-grams never cross a word boundary. Each word is padded with one space per
    # side, and a padded word no longer than n yields itself once and no longer n-grams, as
    # scikit-learn's "char_wb" analyzer does.
    low, high = ngram_range
    grams: list[str] = []
    for word in _WHITESPACE.sub(" ", text).split():
        padded = f" {word} "
        for size in range(low, high + 1):
            if len(padded) <= size:
                grams.append(padded)
                break
            grams.extend(padded[start:start + size] for start in range(len(padded) - size + 1))
    return grams


def _l2_normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    return rows / norms
