"""Reader of GoEmotions (Demszky et al., ACL 2020) Reddit comments as one-turn Conversations.

File format: tab-separated `text <TAB> comma-separated emotion ids <TAB> comment id`, no header,
one comment per line. A text that contains a double quote is quoted CSV-style (the whole text in
double quotes, inner quotes doubled), so each line is parsed with the csv module. The ids index
the 28 names in `labels.txt` (27 emotions plus neutral), and `sentiment_mapping.tsv` puts every
name in one of the dataset's sentiment groups: positive, negative, ambiguous (confusion,
curiosity, realization, surprise) or neutral. Both files must sit next to the split file.

Label rule for the three-class `sentiment` of a comment with one or more emotions: negative if
any emotion is in the negative group, else positive if any is in the positive group, else
neutral. So an ambiguous emotion alone, or with neutral, counts as neutral, and a comment that
mixes positive and negative emotions counts as negative, because missing a negative message
costs more than a false alarm when deciding on escalation. `frustration` is true when any of
anger, annoyance, disappointment or disapproval is present.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.datasets.paths import GOEMOTIONS_SPLITS, read_lines
from serving.errors import ConversationValidationError, DatasetError
from serving.schema import Conversation, Sentiment, parse_conversation

logger = logging.getLogger(__name__)

SOURCE_HINT = (
    "the official GoEmotions splits are bundled as data/raw/goemotions/{train,dev,test}.tsv.gz "
    "with labels.txt and sentiment_mapping.tsv; they come from "
    "github.com/google-research/google-research, folder goemotions/data/"
)

LABELS_FILE = "labels.txt"
SENTIMENT_MAPPING_FILE = "sentiment_mapping.tsv"
MAPPING_HEADER = "emotion\tsentiment_group"
SENTIMENT_GROUPS = frozenset({"positive", "negative", "ambiguous", "neutral"})
FRUSTRATION_EMOTIONS = frozenset({"anger", "annoyance", "disappointment", "disapproval"})

_COMMENT_ID = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class GoEmotionsExample:
    """One GoEmotions comment with its emotion names, as stored in the split file."""

    comment_id: str
    text: str
    emotions: tuple[str, ...]
    line_number: int


def read_emotion_names(path: Path) -> list[str]:
    """Read `labels.txt`: one emotion name per line, the line index being the emotion id."""
    names = [line.strip() for _, line in read_lines(path, source_hint=SOURCE_HINT)]
    while names and not names[-1]:
        names.pop()

    for index, name in enumerate(names):
        if not name:
            raise DatasetError(
                f"{path}, line {index + 1}: empty emotion name; every line up to the last must "
                "name one emotion"
            )
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: emotion names repeat; each name must appear once")
    return names


def read_sentiment_mapping(path: Path) -> dict[str, str]:
    """Read `sentiment_mapping.tsv` (header `emotion<TAB>sentiment_group`) as name -> group."""
    mapping: dict[str, str] = {}
    for number, line in read_lines(path, source_hint=SOURCE_HINT):
        if number == 1:
            if line != MAPPING_HEADER:
                raise DatasetError(
                    f"{path}, line 1: expected the header {MAPPING_HEADER!r}, found {line!r}"
                )
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or fields[1] not in SENTIMENT_GROUPS:
            raise DatasetError(
                f"{path}, line {number}: expected 'emotion<TAB>group' with group one of "
                f"{', '.join(sorted(SENTIMENT_GROUPS))}, found {line!r}"
            )
        mapping[fields[0]] = fields[1]
    return mapping


def sentiment_from_emotions(emotions: Iterable[str], groups: Mapping[str, str]) -> Sentiment:
    """Map a comment's emotions to negative, positive or neutral by the rule in the module doc.

    Raises KeyError for an emotion that `groups` does not map.
    """
    present = {groups[emotion] for emotion in emotions}
    if "negative" in present:
        return Sentiment.NEGATIVE
    if "positive" in present:
        return Sentiment.POSITIVE
    return Sentiment.NEUTRAL


def is_frustration(emotions: Iterable[str]) -> bool:
    """Return whether any emotion is anger, annoyance, disappointment or disapproval."""
    return not FRUSTRATION_EMOTIONS.isdisjoint(emotions)


def read_goemotions_examples(path: Path) -> list[GoEmotionsExample]:
    """Read one GoEmotions split file (gzipped or plain) with emotion names, in file order.

    Raises DatasetError naming the file and line for malformed input.
    """
    path = Path(path)
    names = read_emotion_names(path.parent / LABELS_FILE)

    examples: list[GoEmotionsExample] = []
    first_line_of: dict[str, int] = {}
    for number, line in read_lines(path, source_hint=SOURCE_HINT):
        if not line.strip():
            continue
        example = _parse_example(path, number, line, names)
        if example.comment_id in first_line_of:
            raise DatasetError(
                f"{path}, line {number}: duplicate comment id {example.comment_id!r}, first seen "
                f"on line {first_line_of[example.comment_id]}; each comment must appear once"
            )
        first_line_of[example.comment_id] = number
        examples.append(example)
    return examples


def read_goemotions(path: Path, split: str) -> list[Conversation]:
    """Read one GoEmotions split file as one-turn customer Conversations, in file order.

    `split` is the official split the file belongs to (train, dev or test) and goes into the
    id, `goemotions-<split>-<comment id>`. The turn carries `labels.sentiment` and
    `labels.frustration` by the rule in the module docstring.
    """
    path = Path(path)
    if split not in GOEMOTIONS_SPLITS:
        raise DatasetError(
            f"unknown GoEmotions split {split!r}; use one of {', '.join(GOEMOTIONS_SPLITS)}"
        )

    groups = read_sentiment_mapping(path.parent / SENTIMENT_MAPPING_FILE)
    _check_frustration_names(path.parent / SENTIMENT_MAPPING_FILE, groups)
    examples = read_goemotions_examples(path)
    _check_mapping_covers(path.parent / SENTIMENT_MAPPING_FILE, groups, examples)

    conversations = [_build_conversation(path, split, example, groups) for example in examples]
    logger.info("read %d GoEmotions comments from %s", len(conversations), path)
    return conversations


def _parse_example(
    path: Path, number: int, line: str, names: list[str]
) -> GoEmotionsExample:
    try:
        fields = next(csv.reader([line], delimiter="\t", quotechar='"', strict=True))
    except csv.Error as error:
        raise DatasetError(
            f"{path}, line {number}: malformed quoting ({error}); a quoted text must be wrapped "
            "in double quotes with inner quotes doubled"
        ) from None
    if len(fields) != 3:
        raise DatasetError(
            f"{path}, line {number}: expected 3 tab-separated fields (text, emotion ids, comment "
            f"id), found {len(fields)}"
        )

    text, id_field, comment_id = fields
    if not _COMMENT_ID.fullmatch(comment_id):
        raise DatasetError(
            f"{path}, line {number}: invalid comment id {comment_id!r}; expected letters, digits "
            "or underscores"
        )
    emotions = tuple(_emotion_name(path, number, item, names) for item in id_field.split(","))
    return GoEmotionsExample(comment_id, text, emotions, number)


def _emotion_name(path: Path, number: int, item: str, names: list[str]) -> str:
    try:
        index = int(item)
    except ValueError:
        index = -1
    if not 0 <= index < len(names):
        raise DatasetError(
            f"{path}, line {number}: invalid emotion id {item!r}; ids are integers from 0 to "
            f"{len(names) - 1} indexing {LABELS_FILE}"
        )
    return names[index]


def _check_frustration_names(path: Path, groups: Mapping[str, str]) -> None:
    missing = sorted(FRUSTRATION_EMOTIONS - groups.keys())
    if missing:
        raise DatasetError(
            f"{path}: frustration emotions {missing} are not in the mapping; the frustration "
            "label needs anger, annoyance, disappointment and disapproval"
        )


def _check_mapping_covers(
    path: Path, groups: Mapping[str, str], examples: list[GoEmotionsExample]
) -> None:
    used = {emotion for example in examples for emotion in example.emotions}
    unmapped = sorted(used - groups.keys())
    if unmapped:
        raise DatasetError(
            f"{path}: emotions {unmapped} have no sentiment group; add a line for each"
        )


def _build_conversation(
    path: Path, split: str, example: GoEmotionsExample, groups: Mapping[str, str]
) -> Conversation:
    conversation_id = f"goemotions-{split}-{example.comment_id}"
    labels = {
        "sentiment": sentiment_from_emotions(example.emotions, groups).value,
        "frustration": is_frustration(example.emotions),
    }
    data = {
        "id": conversation_id,
        "source": "goemotions",
        "turns": [{"role": "customer", "text": example.text, "labels": labels}],
    }
    try:
        return parse_conversation(data, line_number=example.line_number)
    except ConversationValidationError as error:
        raise DatasetError(f"{path}: comment does not fit the conversation schema: {error}") \
            from None
