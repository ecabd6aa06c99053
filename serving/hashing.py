"""SHA-256 digests of files, used to pin bundle and export artifacts."""

from __future__ import annotations

import hashlib
from pathlib import Path

# 1 MiB reads keep memory flat for the 90 MB encoder while staying fast.
_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the lowercase hex SHA-256 digest of the file at `path`."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
