"""Tests of the GoEmotions and conversation readers of the frustration benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.benchmark.frustration_data import (
    default_frustration_file,
    read_frustration_file,
)
from pipelines.datasets.paths import SHARED_DATASETS_ENV, goemotions_file
from serving.errors import DatasetError
from serving.schema import parse_conversation, write_conversations
from tests.conftest import REPOSITORY

GOEMOTIONS_DIR = REPOSITORY / "data" / "raw" / "goemotions"

# Ids index labels.txt: 2 anger, 3 annoyance, 9 disappointment, 10 disapproval, 17 joy,
# 27 neutral.
COMMENTS = [
    ("This is so annoying", "3", "c1"),
    ("Love it", "17", "c2"),
    ("I disagree but it made me laugh", "10,17", "c3"),
    ("ok", "27", "c4"),
    ("Furious right now", "2", "c5"),
    ("Sad that it ended", "9", "c6"),
]


def write_goemotions(folder: Path, name: str = "heldout.tsv") -> Path:
    """Write a small GoEmotions-format file with labels.txt beside it; return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(GOEMOTIONS_DIR / "labels.txt", folder / "labels.txt")
    path = folder / name
    path.write_text("".join(f"{text}\t{ids}\t{comment_id}\n" for text, ids, comment_id
                            in COMMENTS), encoding="utf-8")
    return path


def test_goemotions_file_of_any_name(tmp_path: Path) -> None:
    path = write_goemotions(tmp_path)

    sample = read_frustration_file(path)

    assert sample.texts == [text for text, _, _ in COMMENTS]
    assert sample.labels.tolist() == [1, 0, 1, 0, 1, 1]
    assert sample.source == path


def test_goemotions_needs_labels_file(tmp_path: Path) -> None:
    path = write_goemotions(tmp_path)
    (tmp_path / "labels.txt").unlink()

    with pytest.raises(DatasetError) as raised:
        read_frustration_file(path)

    assert str(tmp_path / "labels.txt") in str(raised.value)
    assert "Copy" in str(raised.value)


def test_malformed_goemotions_line_is_named(tmp_path: Path) -> None:
    path = write_goemotions(tmp_path)
    path.write_text("text only\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="line 1"):
        read_frustration_file(path)


def test_conversation_file_is_read(tmp_path: Path) -> None:
    conversation = parse_conversation({"id": "c1", "turns": [
        {"role": "customer", "text": "third time asking", "labels": {"frustration": True}},
        {"role": "assistant", "text": "let me check"},
        {"role": "customer", "text": "thanks", "labels": {"frustration": False}},
        {"role": "customer", "text": "no label here"},
    ]})
    path = tmp_path / "sample.jsonl"
    write_conversations([conversation], path)

    sample = read_frustration_file(path)

    assert sample.texts == ["third time asking", "thanks"]
    assert sample.labels.tolist() == [1, 0]


def test_unlabelled_conversations_are_rejected(tmp_path: Path) -> None:
    conversation = parse_conversation({"id": "c1", "turns": [
        {"role": "customer", "text": "hello"}]})
    path = tmp_path / "sample.jsonl"
    write_conversations([conversation], path)

    with pytest.raises(DatasetError, match="labels.frustration"):
        read_frustration_file(path)


def test_unknown_format_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="unknown data format"):
        read_frustration_file(path)


def test_default_prefers_shared_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "goemotions"
    shared.mkdir()
    shutil.copy(goemotions_file("test"), shared / "test.tsv.gz")
    monkeypatch.setenv(SHARED_DATASETS_ENV, str(tmp_path))

    assert default_frustration_file() == shared / "test.tsv.gz"


def test_default_falls_back_to_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHARED_DATASETS_ENV, str(tmp_path))

    assert default_frustration_file() == goemotions_file("test")


def test_bundled_test_split_counts() -> None:
    sample = read_frustration_file(goemotions_file("test"))

    assert len(sample.texts) == 5_427
    assert 0 < int(np.sum(sample.labels)) < len(sample.texts)
