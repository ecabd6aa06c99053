"""Readers of labelled sentiment data for the benchmark: TweetEval splits and conversation files.

TweetEval (Barbieri et al., Findings of EMNLP 2020) stores a split as two files of equal line
count: `<split>_text.txt` with one tweet per line and `<split>_labels.txt` with one integer per
line. `mapping.txt` in the same folder names each integer (`0<TAB>negative`, `1<TAB>neutral`,
`2<TAB>positive` for the sentiment task). The classes match the product's three sentiment
classes by name, so label ids are translated through the names, never by position.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.datasets.paths import PROJECT_ROOT, read_lines, shared_datasets_dir
from pipelines.train.labels import SENTIMENT_INDEX
from serving.errors import DatasetError
from serving.schema import Role, Sentiment

logger = logging.getLogger(__name__)

TEXT_SUFFIX = "_text.txt"
LABELS_SUFFIX = "_labels.txt"
MAPPING_FILE = "mapping.txt"

# The published sentiment mapping.txt, used when a split arrives without one.
DEFAULT_MAPPING = {0: Sentiment.NEGATIVE, 1: Sentiment.NEUTRAL, 2: Sentiment.POSITIVE}

TWEETEVAL_SENTIMENT_FOLDER = Path("tweeteval") / "sentiment"
DEFAULT_SPLIT_FILE = "val_text.txt"

FORMAT_HINT = (
    "Pass --data with a TweetEval `<split>_text.txt` whose `<split>_labels.txt` (one label id "
    "per line) sits beside it, or a JSON Lines file of conversations whose customer turns carry "
    "labels.sentiment"
)


@dataclass(frozen=True)
class SentimentSample:
    """Labelled messages, with `labels` as indices into (negative, neutral, positive), shape [n]."""

    texts: list[str]
    labels: np.ndarray
    source: Path


def default_sentiment_file() -> Path:
    """Return the TweetEval sentiment validation split among the shared corpora.

    Raises DatasetError naming the expected path when the shared folder or the file is missing.
    """
    shared = shared_datasets_dir()
    folder = shared if shared is not None else PROJECT_ROOT.parent / "shared" / "datasets"
    path = folder / TWEETEVAL_SENTIMENT_FOLDER / DEFAULT_SPLIT_FILE
    if not path.is_file():
        raise DatasetError(
            f"the default benchmark data {path} was not found. {FORMAT_HINT}, or set "
            "ESCALATION_SHARED_DATASETS to the folder that contains tweeteval/"
        )
    return path


def read_sentiment_file(path: Path, labels_path: Path | None = None) -> SentimentSample:
    """Read a TweetEval split (`.txt`) or conversations (`.jsonl`, `.json`, GoEmotions `.tsv`).

    `labels_path` applies to TweetEval only. It defaults to the `_labels.txt` beside the text
    file. A `_labels.txt` given as `path` finds its `_text.txt` the same way.
    """
    path = Path(path)
    if path.name.lower().removesuffix(".gz").endswith(".txt"):
        return read_tweeteval_sentiment(path, labels_path)
    if labels_path is not None:
        raise DatasetError(f"--labels {labels_path} applies to TweetEval .txt files only, but "
                           f"--data {path} is not one. Leave --labels out.")
    return _read_conversation_sentiment(path)


def read_tweeteval_sentiment(path: Path, labels_path: Path | None = None) -> SentimentSample:
    """Read a TweetEval sentiment split from its text and labels files.

    Raises DatasetError when a file is missing, the line counts differ, or a label is not an
    id of the mapping.
    """
    text_path, labels_path = _split_files(Path(path), labels_path)
    texts = [line for _, line in read_lines(text_path, source_hint=FORMAT_HINT)]
    raw_labels = list(read_lines(labels_path, source_hint=FORMAT_HINT))
    # A blank last line, which editors often leave, is not a label.
    while raw_labels and not raw_labels[-1][1].strip():
        raw_labels.pop()
    while texts and len(texts) > len(raw_labels) and not texts[-1].strip():
        texts.pop()

    if len(texts) != len(raw_labels):
        raise DatasetError(
            f"{text_path} has {len(texts)} lines but {labels_path} has {len(raw_labels)}. "
            "Line i of the labels file must label line i of the text file."
        )
    mapping = read_label_mapping(text_path.parent / MAPPING_FILE)
    labels = np.asarray([_label_index(labels_path, number, value, mapping)
                         for number, value in raw_labels], dtype=np.int64)

    logger.info("read %d TweetEval sentiment messages from %s", len(texts), text_path)
    return SentimentSample(texts, labels, text_path)


def read_label_mapping(path: Path) -> dict[int, Sentiment]:
    """Read `mapping.txt` (`id<TAB>name` per line), or return DEFAULT_MAPPING when it is missing."""
    if not path.is_file():
        logger.info("%s not found, so ids 0, 1, 2 are read as negative, neutral, positive", path)
        return dict(DEFAULT_MAPPING)

    mapping: dict[int, Sentiment] = {}
    for number, line in read_lines(path, source_hint=FORMAT_HINT):
        if not line.strip():
            continue
        fields = line.split("\t")
        allowed = ", ".join(sentiment.value for sentiment in Sentiment)
        if len(fields) != 2 or not fields[0].strip().isdigit() \
                or fields[1].strip() not in {sentiment.value for sentiment in Sentiment}:
            raise DatasetError(f"{path}, line {number}: expected 'id<TAB>name' with a name "
                               f"among {allowed}, found {line!r}")
        mapping[int(fields[0])] = Sentiment(fields[1].strip())
    return mapping


def _split_files(path: Path, labels_path: Path | None) -> tuple[Path, Path]:
    # Either file may be gzipped, so its partner is looked up with and without .gz.
    name = path.name.removesuffix(".gz")
    if name.endswith(LABELS_SUFFIX):
        text_path = _partner(path, name.removesuffix(LABELS_SUFFIX) + TEXT_SUFFIX)
        return text_path, labels_path if labels_path is not None else path
    if labels_path is not None:
        return path, labels_path
    if not name.endswith(TEXT_SUFFIX):
        raise DatasetError(f"the labels of {path} were not found, because a TweetEval text file "
                           f"is named <split>{TEXT_SUFFIX}. Rename it or pass --labels FILE.")
    return path, _partner(path, name.removesuffix(TEXT_SUFFIX) + LABELS_SUFFIX)


def _partner(path: Path, name: str) -> Path:
    plain = path.with_name(name)
    compressed = path.with_name(name + ".gz")
    return compressed if not plain.is_file() and compressed.is_file() else plain


def _label_index(path: Path, number: int, value: str, mapping: dict[int, Sentiment]) -> int:
    text = value.strip()
    if not text.isdigit() or int(text) not in mapping:
        allowed = ", ".join(f"{key} ({name.value})" for key, name in sorted(mapping.items()))
        raise DatasetError(f"{path}, line {number}: invalid label {value!r}. The ids are "
                           f"{allowed}.")
    return SENTIMENT_INDEX[mapping[int(text)]]


def _read_conversation_sentiment(path: Path) -> SentimentSample:
    from pipelines.train.data import read_any

    texts: list[str] = []
    labels: list[int] = []
    for conversation in read_any(path):
        for turn in conversation.turns:
            if turn.role is Role.CUSTOMER and turn.labels is not None \
                    and turn.labels.sentiment is not None:
                texts.append(turn.text)
                labels.append(SENTIMENT_INDEX[turn.labels.sentiment])

    if not texts:
        raise DatasetError(f"{path} has no customer turn with labels.sentiment. {FORMAT_HINT}")
    return SentimentSample(texts, np.asarray(labels, dtype=np.int64), path)
