"""Locations of the bundled and shared corpora, and line-by-line reading of their files."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from serving.errors import DatasetError

# NOTE: these paths assume the editable install of this repository (`pip install -e .`), which is
# how the Makefile installs it. A wheel install has no data/ directory next to the code.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "data"
RAW_DIR = DATA_DIR / "raw"
SPLITS_DIR = DATA_DIR / "splits"
USS_DIR = RAW_DIR / "uss"
GOEMOTIONS_DIR = RAW_DIR / "goemotions"

SHARED_DATASETS_ENV = "ESCALATION_SHARED_DATASETS"
MHCH_DIRECTORY_NAME = "mhch_dami"

BUNDLED_USS_FILES = {"mwoz": "MWOZ.txt.gz", "sgd": "SGD.txt.gz"}
GOEMOTIONS_SPLITS = ("train", "dev", "test")

_GZIP_MAGIC = b"\x1f\x8b"


def shared_datasets_dir() -> Path | None:
    """Return the directory of corpora that are not bundled, or None when there is none.

    The environment variable ESCALATION_SHARED_DATASETS wins; without it the directory is
    `shared/datasets` next to the repository. Raises DatasetError when the variable is set but
    does not name a directory, because a typo there would otherwise look like a missing corpus.
    """
    configured = os.environ.get(SHARED_DATASETS_ENV)
    if configured:
        directory = Path(configured).expanduser()
        if not directory.is_dir():
            raise DatasetError(
                f"{SHARED_DATASETS_ENV}={configured!r} is not a directory; set it to the "
                "directory that contains the corpus folders (for example mhch_dami/) or unset it"
            )
        return directory

    default = PROJECT_ROOT.parent / "shared" / "datasets"
    return default if default.is_dir() else None


def bundled_uss_files() -> dict[str, Path]:
    """Return the bundled USS files keyed by corpus name (`mwoz`, `sgd`), in reading order."""
    return {corpus: USS_DIR / name for corpus, name in BUNDLED_USS_FILES.items()}


def goemotions_file(split: str) -> Path:
    """Return the bundled GoEmotions file of an official split (`train`, `dev` or `test`)."""
    if split not in GOEMOTIONS_SPLITS:
        raise DatasetError(
            f"unknown GoEmotions split {split!r}; use one of {', '.join(GOEMOTIONS_SPLITS)}"
        )
    return GOEMOTIONS_DIR / f"{split}.tsv.gz"


def mhch_file(name: str) -> Path:
    """Return the path of an MHCH-DAMI file such as `clothing_eval` in the shared directory.

    Raises DatasetError when no shared directory exists, because these files are not bundled.
    """
    shared = shared_datasets_dir()
    if shared is None:
        raise DatasetError(
            f"MHCH file {name!r} not found: it is not bundled (its repository states no licence) "
            f"and no shared corpus directory exists; set {SHARED_DATASETS_ENV} to a directory "
            f"that contains {MHCH_DIRECTORY_NAME}/{name}.jsonl.gz (see data/README.md)"
        )
    return shared / MHCH_DIRECTORY_NAME / f"{name}.jsonl.gz"


def open_text(path: Path, *, source_hint: str) -> TextIO:
    """Open a UTF-8 corpus file for reading, gunzipping it when it starts with the gzip magic.

    Only "\\n" ends a line and line endings are kept (newline="\\n"), so a carriage return
    inside a field never splits a record. Raises DatasetError naming the file and `source_hint`
    (where to get it) when the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found; {source_hint}")

    with path.open("rb") as probe:
        magic = probe.read(len(_GZIP_MAGIC))
    # utf-8-sig drops a byte order mark at the start and reads everything else as UTF-8.
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="\n")
    return path.open(encoding="utf-8-sig", newline="\n")


def read_lines(path: Path, *, source_hint: str) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, line without its line ending) for a plain or gzipped file.

    A "\\r" before the "\\n" is dropped, so files saved with Windows line endings read the same.
    Raises DatasetError on bytes that are not UTF-8 and on a corrupt or truncated gzip stream,
    naming the line where reading stopped. The file is decoded in chunks, so the bad byte may
    sit a few lines after that one.
    """
    line_number = 0
    with open_text(path, source_hint=source_hint) as handle:
        try:
            for line_number, line in enumerate(handle, start=1):
                yield line_number, line.removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError as error:
            raise DatasetError(
                f"{path}, line {line_number + 1} or a few lines later: not valid UTF-8 "
                f"({error.reason}); re-export the file as UTF-8"
            ) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise DatasetError(
                f"{path}, line {line_number + 1}: corrupt or truncated gzip data ({error}); "
                f"get a fresh copy: {source_hint}"
            ) from None

