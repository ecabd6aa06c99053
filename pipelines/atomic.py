"""Write output files through a fresh temporary file beside them, renamed over the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a new temporary path in `path`'s folder, then rename it over `path` on success.

    The temporary name is unique and created by this call, so it can never be an input or an
    existing file of the user's. On an error the temporary file is removed and `path` is left
    as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".partial")
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
