"""Tests of the TweetEval and conversation readers of the sentiment benchmark."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pipelines.benchmark.sentiment_data import (
    default_sentiment_file,
    read_sentiment_file,
    read_tweeteval_sentiment,
)
from pipelines.datasets.paths import SHARED_DATASETS_ENV, shared_datasets_dir
from serving.errors import DatasetError
from serving.schema import write_conversations
from tests.conftest import REPOSITORY

TWEETS = ["the new update is great", "meeting moved to 3pm", "worst service ever"]


def write_split(folder: Path, texts: list[str], labels: list[str], *,
                mapping: str | None = "0\tnegative\n1\tneutral\n2\tpositive\n",
                split: str = "val") -> Path:
    """Write `<split>_text.txt`, `<split>_labels.txt` and mapping.txt; return the text file."""
    folder.mkdir(parents=True, exist_ok=True)
    text_path = folder / f"{split}_text.txt"
    text_path.write_text("".join(f"{text} \n" for text in texts), encoding="utf-8")
    (folder / f"{split}_labels.txt").write_text("".join(f"{label}\n" for label in labels),
                                                encoding="utf-8")
    if mapping is not None:
        (folder / "mapping.txt").write_text(mapping, encoding="utf-8")
    return text_path


def test_split_reads_texts_and_labels(tmp_path: Path) -> None:
    path = write_split(tmp_path, TWEETS, ["2", "1", "0"])

    sample = read_tweeteval_sentiment(path)

    assert sample.texts == [f"{text} " for text in TWEETS]
    assert sample.labels.tolist() == [2, 1, 0]
    assert sample.source == path


def test_labels_map_through_names(tmp_path: Path) -> None:
    # A mapping in another order must still give the product's (negative, neutral, positive).
    path = write_split(tmp_path, TWEETS, ["0", "1", "2"],
                       mapping="0\tpositive\n1\tneutral\n2\tnegative\n")

    sample = read_tweeteval_sentiment(path)

    assert sample.labels.tolist() == [2, 1, 0]


def test_missing_mapping_uses_published_ids(tmp_path: Path) -> None:
    path = write_split(tmp_path, TWEETS, ["0", "2", "1"], mapping=None)

    assert read_tweeteval_sentiment(path).labels.tolist() == [0, 2, 1]


def test_labels_file_finds_text_file(tmp_path: Path) -> None:
    write_split(tmp_path, TWEETS, ["2", "1", "0"], split="test")

    sample = read_sentiment_file(tmp_path / "test_labels.txt")

    assert sample.source == tmp_path / "test_text.txt"
    assert sample.labels.tolist() == [2, 1, 0]


def test_gzipped_partner_is_found(tmp_path: Path) -> None:
    path = write_split(tmp_path, TWEETS, ["2", "1", "0"])
    labels = tmp_path / "val_labels.txt"
    with gzip.open(tmp_path / "val_labels.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write(labels.read_text(encoding="utf-8"))
    labels.unlink()

    assert read_sentiment_file(path).labels.tolist() == [2, 1, 0]


def test_explicit_labels_file(tmp_path: Path) -> None:
    text_path = tmp_path / "tweets.txt"
    text_path.write_text("good\nbad\n", encoding="utf-8")
    labels_path = tmp_path / "gold.txt"
    labels_path.write_text("2\n0\n", encoding="utf-8")

    sample = read_sentiment_file(text_path, labels_path)

    assert sample.labels.tolist() == [2, 0]


def test_unnamed_text_file_needs_labels(tmp_path: Path) -> None:
    text_path = tmp_path / "tweets.txt"
    text_path.write_text("good\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="--labels"):
        read_sentiment_file(text_path)


def test_line_count_mismatch_is_reported(tmp_path: Path) -> None:
    path = write_split(tmp_path, TWEETS, ["2", "1"])

    with pytest.raises(DatasetError) as raised:
        read_tweeteval_sentiment(path)

    assert "3 lines" in str(raised.value)
    assert "has 2" in str(raised.value)


def test_trailing_blank_label_line_is_ignored(tmp_path: Path) -> None:
    path = write_split(tmp_path, TWEETS, ["2", "1", "0"])
    labels = tmp_path / "val_labels.txt"
    labels.write_text(labels.read_text(encoding="utf-8") + "\n", encoding="utf-8")

    assert len(read_tweeteval_sentiment(path).texts) == 3


@pytest.mark.parametrize("label", ["3", "positive", "-1", ""])
def test_invalid_label_names_line(tmp_path: Path, label: str) -> None:
    path = write_split(tmp_path, TWEETS, ["2", label, "0"])

    with pytest.raises(DatasetError) as raised:
        read_tweeteval_sentiment(path)

    assert "line 2" in str(raised.value)
    assert "0 (negative)" in str(raised.value)


def test_invalid_mapping_is_reported(tmp_path: Path) -> None:
    path = write_split(tmp_path, TWEETS, ["2", "1", "0"], mapping="0\tangry\n")

    with pytest.raises(DatasetError, match="mapping.txt, line 1"):
        read_tweeteval_sentiment(path)


def test_missing_labels_file_is_named(tmp_path: Path) -> None:
    path = write_split(tmp_path, TWEETS, ["2", "1", "0"])
    (tmp_path / "val_labels.txt").unlink()

    with pytest.raises(DatasetError, match="val_labels.txt"):
        read_tweeteval_sentiment(path)


def test_conversation_file_is_read(tmp_path: Path) -> None:
    from serving.schema import parse_conversation

    conversation = parse_conversation({"id": "c1", "turns": [
        {"role": "customer", "text": "this is broken", "labels": {"sentiment": "negative"}},
        {"role": "assistant", "text": "sorry to hear that"},
        {"role": "customer", "text": "thanks, works now", "labels": {"sentiment": "positive"}},
        {"role": "customer", "text": "ok"},
    ]})
    path = tmp_path / "sample.jsonl"
    write_conversations([conversation], path)

    sample = read_sentiment_file(path)

    assert sample.texts == ["this is broken", "thanks, works now"]
    assert sample.labels.tolist() == [0, 2]


def test_conversation_file_rejects_labels_option(tmp_path: Path) -> None:
    path = tmp_path / "sample.jsonl"
    path.write_text("", encoding="utf-8")

    with pytest.raises(DatasetError, match="Leave --labels out"):
        read_sentiment_file(path, tmp_path / "labels.txt")


def test_unlabelled_conversations_are_rejected(tmp_path: Path) -> None:
    path = REPOSITORY / "data" / "raw" / "uss" / "SGD.txt.gz"
    sample_path = tmp_path / "conversations.jsonl"
    from pipelines.datasets.uss import read_uss

    write_conversations(read_uss(path, "sgd")[:2], sample_path)

    with pytest.raises(DatasetError, match="labels.sentiment"):
        read_sentiment_file(sample_path)


def test_missing_default_names_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHARED_DATASETS_ENV, str(tmp_path))

    with pytest.raises(DatasetError) as raised:
        default_sentiment_file()

    assert str(tmp_path / "tweeteval" / "sentiment" / "val_text.txt") in str(raised.value)
    assert "--data" in str(raised.value)


def test_default_is_shared_validation_split(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    write_split(tmp_path / "tweeteval" / "sentiment", TWEETS, ["2", "1", "0"])
    monkeypatch.setenv(SHARED_DATASETS_ENV, str(tmp_path))

    assert default_sentiment_file() == tmp_path / "tweeteval" / "sentiment" / "val_text.txt"


def test_shared_validation_split_counts() -> None:
    shared = shared_datasets_dir()
    path = None if shared is None else shared / "tweeteval" / "sentiment" / "val_text.txt"
    if path is None or not path.is_file():
        pytest.skip("the shared TweetEval corpus is not on this machine")

    sample = read_sentiment_file(path)

    # Counts published with the corpus: 312 negative, 869 neutral, 819 positive.
    assert len(sample.texts) == 2_000
    assert np.bincount(sample.labels).tolist() == [312, 869, 819]
