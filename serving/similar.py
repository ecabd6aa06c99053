"""Nearest-neighbour index of resolved past conversations, stored as two bundle files.

`similar_cases.npy` contains a float32 [n, dimension] array of L2-normalised conversation
vectors, and `similar_cases.json` a list of n case records in the same order. A conversation's
vector is the re-normalised mean of the embeddings of its non-empty customer turns, computed
by `conversation_vector` when serving and by the training job when it builds the index, so
both sides use one definition. The search is an exact dot product over all rows, which costs
about n * dimension multiply-adds per query.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import SimilarCaseIndexError
from serving.schema import Conversation
from serving.tiers import Reason

logger = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]

VECTORS_FILE = "similar_cases.npy"
CASES_FILE = "similar_cases.json"
DEFAULT_NEIGHBOURS = 3
# float32 rows written as unit vectors have norms within about 1e-6 of 1; a larger gap means
# the file was not normalised.
NORM_TOLERANCE = 1e-3
REBUILD_HINT = "rebuild both files with pipelines.train.similar.build_similar_case_index"


class CaseRecord(BaseModel):
    """One resolved past conversation as stored in `similar_cases.json`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    reason: Reason | None
    summary: str
    resolution: str
    source: str | None


class SimilarCase(BaseModel):
    """A past case returned by a search, with its cosine similarity to the query."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    score: float
    reason: Reason | None
    summary: str
    resolution: str
    source: str | None


class SimilarCaseIndex:
    """Exact cosine search over the vectors of resolved past conversations."""

    def __init__(self, vectors: np.ndarray, cases: Sequence[CaseRecord]) -> None:
        _check_vectors(vectors, len(cases), "vectors")
        _check_unique_ids(cases, "cases")
        self._vectors = vectors
        self._cases = tuple(cases)

    @classmethod
    def load(cls, directory: str | Path) -> SimilarCaseIndex:
        """Load `similar_cases.npy` and `similar_cases.json` from a bundle folder."""
        directory = Path(directory)
        return cls.from_files(directory / VECTORS_FILE, directory / CASES_FILE)

    @classmethod
    def from_files(cls, vectors_path: Path, cases_path: Path) -> SimilarCaseIndex:
        """Load an index from its vector file and its case file, checking that they agree."""
        vectors = _read_vectors(vectors_path)
        cases = _read_cases(cases_path)
        _check_vectors(vectors, len(cases), str(vectors_path), cases_path=str(cases_path))
        _check_unique_ids(cases, str(cases_path))
        index = cls(vectors, cases)
        logger.info("loaded similar-case index %s: %d cases of dimension %d", cases_path,
                    len(cases), index.dimension)
        return index

    def __len__(self) -> int:
        return len(self._cases)

    @property
    def dimension(self) -> int:
        """Width of each case vector."""
        return int(self._vectors.shape[1])

    @property
    def ids(self) -> list[str]:
        """Case ids in row order."""
        return [case.id for case in self._cases]

    def vector(self, case_id: str) -> np.ndarray:
        """Return the stored vector of one case; raises KeyError for an unknown id."""
        for row, case in enumerate(self._cases):
            if case.id == case_id:
                return self._vectors[row].copy()
        raise KeyError(f"case {case_id!r} is not in the similar-case index")

    def nearest(
        self,
        query: np.ndarray,
        k: int = DEFAULT_NEIGHBOURS,
        exclude_ids: Collection[str] = (),
    ) -> list[SimilarCase]:
        """Return up to `k` cases most similar to `query`, best first.

        `query` is one vector of the index's dimension, shape [dimension] or [1, dimension];
        it is L2-normalised here. Cases whose id is in `exclude_ids` are skipped, so a
        conversation that is itself in the index does not find itself. Equal scores keep row
        order.
        """
        if k < 1:
            raise ValueError(f"k is {k}; request 1 or more similar cases")
        unit = self._unit_query(query)

        scores = self._vectors @ unit
        excluded = set(exclude_ids)
        rows = [row for row in np.argsort(-scores, kind="stable").tolist()
                if self._cases[row].id not in excluded][:k]
        return [self._result(row, float(scores[row])) for row in rows]

    def _unit_query(self, query: np.ndarray) -> np.ndarray:
        vector = np.asarray(query, dtype=np.float32)
        if vector.ndim == 2 and vector.shape[0] == 1:
            vector = vector[0]
        if vector.shape != (self.dimension,):
            raise ValueError(f"query has shape {vector.shape}; the index needs one vector of "
                             f"shape ({self.dimension},) or (1, {self.dimension})")
        if not np.isfinite(vector).all():
            raise ValueError("query contains NaN or infinite values; check the encoder")
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            raise ValueError("query is the zero vector, so no similarity can be computed; "
                             "embed some customer text first")
        return vector / norm

    def _result(self, row: int, score: float) -> SimilarCase:
        case = self._cases[row]
        return SimilarCase(id=case.id, score=round(score, 6), reason=case.reason,
                           summary=case.summary, resolution=case.resolution, source=case.source)


# ---------------------------------------------------------------------------------------------
# Conversation vectors
# ---------------------------------------------------------------------------------------------


def customer_texts(conversation: Conversation) -> list[str]:
    """Return the texts of the customer turns that contain more than whitespace, in order."""
    texts = (conversation.turns[index].text for index in conversation.customer_turn_indices())
    return [text for text in texts if text.strip()]


def mean_direction(vectors: np.ndarray) -> np.ndarray | None:
    """Return the L2-normalised mean of the rows as float32, or None if it is zero or empty."""
    if len(vectors) == 0:
        return None
    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm == 0.0 or not np.isfinite(norm):
        return None
    return (mean / norm).astype(np.float32)


def conversation_vector(conversation: Conversation, embed: Embed) -> np.ndarray | None:
    """Return the vector a conversation has in the index, or None without customer text."""
    texts = customer_texts(conversation)
    if not texts:
        return None
    embeddings = np.asarray(embed(texts))
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise ValueError(f"embed returned an array of shape {embeddings.shape} for "
                         f"{len(texts)} texts; it must return one row per text")
    return mean_direction(embeddings)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def write_similar_cases(
    output_dir: Path, vectors: np.ndarray, cases: Sequence[CaseRecord]
) -> tuple[Path, Path]:
    """Write the two index files after the same checks loading applies; return their paths."""
    _check_vectors(vectors, len(cases), "vectors")
    _check_unique_ids(cases, "cases")

    output_dir.mkdir(parents=True, exist_ok=True)
    vectors_path = output_dir / VECTORS_FILE
    cases_path = output_dir / CASES_FILE
    np.save(vectors_path, vectors, allow_pickle=False)
    records = [case.model_dump(mode="json") for case in cases]
    cases_path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n",
                          encoding="utf-8")
    return vectors_path, cases_path


def _read_vectors(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SimilarCaseIndexError(f"similar-case vector file {path} not found; {REBUILD_HINT}")
    try:
        # Pickled object arrays are rejected: serving never unpickles bundle content.
        vectors = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise SimilarCaseIndexError(f"similar-case vector file {path} is not a readable .npy "
                                    f"array ({error}); {REBUILD_HINT}") from error
    return vectors


def _read_cases(path: Path) -> list[CaseRecord]:
    if not path.is_file():
        raise SimilarCaseIndexError(f"similar-case file {path} not found; {REBUILD_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SimilarCaseIndexError(f"similar-case file {path} is not valid JSON ({error}); "
                                    f"{REBUILD_HINT}") from error
    if not isinstance(data, list):
        raise SimilarCaseIndexError(f"similar-case file {path} contains a "
                                    f"{type(data).__name__}; it must contain a JSON list of "
                                    f"case records, {REBUILD_HINT}")

    cases: list[CaseRecord] = []
    for position, item in enumerate(data):
        try:
            cases.append(CaseRecord.model_validate(item))
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "(record)"
            raise SimilarCaseIndexError(
                f"similar-case file {path}, record {position}, field {field!r}: {first['msg']}; "
                f"each record needs id, reason, summary, resolution and source, {REBUILD_HINT}"
            ) from None
    return cases


def _check_vectors(
    vectors: np.ndarray, case_count: int, name: str, *, cases_path: str | None = None
) -> None:
    if not isinstance(vectors, np.ndarray) or vectors.dtype != np.float32 or vectors.ndim != 2:
        shape = getattr(vectors, "shape", None)
        dtype = getattr(vectors, "dtype", type(vectors).__name__)
        raise SimilarCaseIndexError(f"{name} has dtype {dtype} and shape {shape}; the index "
                                    f"needs a float32 array of shape [n, dimension], "
                                    f"{REBUILD_HINT}")
    if vectors.shape[0] != case_count:
        cases = cases_path or "the case list"
        raise SimilarCaseIndexError(f"{name} has {vectors.shape[0]} rows but {cases} has "
                                    f"{case_count} records; the two files must come from the "
                                    f"same build, {REBUILD_HINT}")
    if not np.isfinite(vectors).all():
        raise SimilarCaseIndexError(f"{name} contains NaN or infinite values; {REBUILD_HINT}")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
    if len(off):
        raise SimilarCaseIndexError(f"{name} row {int(off[0])} has L2 norm "
                                    f"{norms[off[0]]:.6f}, and {len(off)} rows in all are not "
                                    f"unit vectors; the index needs L2-normalised rows, "
                                    f"{REBUILD_HINT}")


def _check_unique_ids(cases: Sequence[CaseRecord], name: str) -> None:
    seen: set[str] = set()
    for position, case in enumerate(cases):
        if case.id in seen:
            raise SimilarCaseIndexError(f"{name} record {position} repeats case id {case.id!r}; "
                                        f"case ids must be unique, {REBUILD_HINT}")
        seen.add(case.id)
