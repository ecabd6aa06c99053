"""On-disk cache of encoder embeddings, so a rerun of training skips the slow encoding step."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Texts are encoded in chunks so that progress can be reported and a crash loses little.
CHUNK_SIZE = 2_048


def text_key(text: str) -> str:
    """Return the cache key of a text: the hex sha1 of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings of one encoder file, keyed by the hash of each text.

    The folder is named after the encoder's sha256 and batch size, so embeddings of another
    encoder variant, version or batching can never be mixed in.
    """

    def __init__(self, root: Path, encoder_sha256: str, batch_size: int, dimension: int) -> None:
        self.folder = root / f"{encoder_sha256[:16]}-batch{batch_size}"
        self.dimension = dimension
        self._rows: dict[str, int] = {}
        self._vectors = np.zeros((0, dimension), dtype=np.float32)
        self._load()

    def embed(
        self,
        texts: Sequence[str],
        encode: Callable[[list[str]], np.ndarray],
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Return [n, dimension] embeddings of `texts`, encoding only those not cached yet."""
        keys = [text_key(text) for text in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._rows and key not in missing:
                missing[key] = text

        if missing:
            logger.info("encoding %d new texts (%d cached)", len(missing),
                        len(set(keys)) - len(missing))
            self._encode_missing(missing, encode, progress)
        rows = np.fromiter((self._rows[key] for key in keys), dtype=np.int64, count=len(keys))
        return self._vectors[rows]

    def _encode_missing(
        self,
        missing: dict[str, str],
        encode: Callable[[list[str]], np.ndarray],
        progress: Callable[[int], None] | None,
    ) -> None:
        items = list(missing.items())
        for start in range(0, len(items), CHUNK_SIZE):
            chunk = items[start:start + CHUNK_SIZE]
            vectors = np.asarray(encode([text for _, text in chunk]), dtype=np.float32)
            if vectors.shape != (len(chunk), self.dimension):
                raise ValueError(f"encoder returned shape {list(vectors.shape)} for "
                                 f"{len(chunk)} texts, expected [{len(chunk)}, {self.dimension}]")
            offset = self._vectors.shape[0]
            self._vectors = np.vstack([self._vectors, vectors])
            for position, (key, _) in enumerate(chunk):
                self._rows[key] = offset + position
            self._save()
            if progress is not None:
                progress(len(chunk))

    def _load(self) -> None:
        keys_path = self.folder / "keys.txt"
        vectors_path = self.folder / "vectors.npy"
        if not (keys_path.is_file() and vectors_path.is_file()):
            return
        keys = keys_path.read_text(encoding="ascii").split()
        vectors = np.load(vectors_path)
        if vectors.shape != (len(keys), self.dimension):
            # A run killed between the two writes leaves them out of step; start afresh.
            logger.warning("embedding cache %s is inconsistent (%d keys, shape %s); "
                           "rebuilding it", self.folder, len(keys), list(vectors.shape))
            return
        self._rows = {key: row for row, key in enumerate(keys)}
        self._vectors = vectors.astype(np.float32, copy=False)

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._rows, key=self._rows.__getitem__)
        temporary = self.folder / "vectors.tmp.npy"
        np.save(temporary, self._vectors)
        (self.folder / "keys.txt").write_text("\n".join(keys) + "\n", encoding="ascii")
        temporary.replace(self.folder / "vectors.npy")
