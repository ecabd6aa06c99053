"""Reader of the User Satisfaction Simulation corpora (Sun et al., SIGIR 2021) as Conversations.

File format: one utterance per line, `role <TAB> text <TAB> action <TAB> ratings`, with
dialogues separated by blank lines. Role is USER or SYSTEM. Ratings are the 1-5 satisfaction
scores of 3 to 7 annotators, comma-separated, on USER lines only (1 very dissatisfied,
3 normal, 5 very satisfied). The last line of every dialogue is `USER <TAB> OVERALL <TAB> <TAB>
ratings`, the rating of the whole dialogue. Some USS files (JDDC) add a fifth column with the
annotators' explanations, which is accepted and ignored.

Mapping: USER becomes a customer turn and SYSTEM an assistant turn. A customer turn's
`labels.satisfaction` and the conversation's `labels.overall_satisfaction` are the most frequent
rating, with ties going to the lower rating, as in the authors' baseline code (argmax over the
counts of ratings 1 to 5). The action column is dropped because it contains dialogue-act
annotations that a live chat does not have, and the schema has no field for it.
`labels.escalated` stays unset because these dialogues contain no handoff to a human. A
rating of 1 or 2 is the dissatisfaction signal.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.datasets.paths import bundled_uss_files, read_lines
from serving.errors import ConversationValidationError, DatasetError
from serving.schema import Conversation, Problem, Role, parse_conversation

logger = logging.getLogger(__name__)

SOURCE_HINT = (
    "the MultiWOZ and SGD files are bundled as data/raw/uss/MWOZ.txt.gz and SGD.txt.gz; every "
    "USS file comes from github.com/sunnweiwei/user-satisfaction-simulation, folder dataset/"
)

MIN_RATING = 1
MAX_RATING = 5
OVERALL_TEXT = "OVERALL"

_ROLES = {"USER": Role.CUSTOMER, "SYSTEM": Role.ASSISTANT}
_CORPUS_NAME = re.compile(r"[a-z][a-z0-9]*")


@dataclass(frozen=True)
class _Line:
    number: int
    role: Role
    text: str
    ratings: tuple[int, ...]


def majority_rating(ratings: Sequence[int]) -> int:
    """Return the most frequent rating; among equally frequent ratings the lowest wins."""
    if not ratings:
        raise ValueError("majority_rating needs at least one rating, got an empty sequence")

    counts = Counter(ratings)
    top = max(counts.values())
    return min(rating for rating, count in counts.items() if count == top)


def read_uss(path: Path, corpus: str) -> list[Conversation]:
    """Read one USS file (gzipped or plain) as Conversations, in file order.

    `corpus` is the short lowercase name used in ids and sources, e.g. `mwoz` gives ids
    `uss-mwoz-0001`, `uss-mwoz-0002`, ... (numbered by position in the file, from 1) and
    source `uss-mwoz`. Raises DatasetError naming the file and line for malformed input.
    """
    path = Path(path)
    if not _CORPUS_NAME.fullmatch(corpus):
        raise DatasetError(
            f"invalid USS corpus name {corpus!r}; use lowercase letters and digits starting "
            "with a letter, such as 'mwoz' or 'sgd'"
        )

    conversations = [
        _build_conversation(path, corpus, position, block)
        for position, block in enumerate(_dialogue_blocks(path), start=1)
    ]
    logger.info("read %d USS dialogues from %s", len(conversations), path)
    return conversations


def read_bundled_uss() -> list[Conversation]:
    """Read the bundled MultiWOZ and SGD files, MultiWOZ first."""
    conversations: list[Conversation] = []
    for corpus, path in bundled_uss_files().items():
        conversations.extend(read_uss(path, corpus))
    return conversations


def _dialogue_blocks(path: Path) -> Iterable[list[_Line]]:
    block: list[_Line] = []
    for number, line in read_lines(path, source_hint=SOURCE_HINT):
        if not line.strip():
            if block:
                yield block
            block = []
            continue
        block.append(_parse_line(path, number, line))
    if block:
        yield block


def _parse_line(path: Path, number: int, line: str) -> _Line:
    fields = line.split("\t")
    if len(fields) not in (4, 5):
        raise DatasetError(
            f"{path}, line {number}: expected 4 tab-separated fields (role, text, action, "
            f"ratings), found {len(fields)}; a tab inside the text would cause this"
        )

    role_name, text, _action, rating_field = fields[:4]
    role = _ROLES.get(role_name)
    if role is None:
        raise DatasetError(
            f"{path}, line {number}: unknown role {role_name!r}; the role column must be USER "
            "or SYSTEM"
        )

    ratings = _parse_ratings(path, number, rating_field)
    if role is Role.CUSTOMER and not ratings:
        raise DatasetError(
            f"{path}, line {number}: USER line without ratings; every USER line needs the "
            "comma-separated 1-5 ratings in the fourth column"
        )
    if role is Role.ASSISTANT and ratings:
        raise DatasetError(
            f"{path}, line {number}: SYSTEM line with ratings {rating_field!r}; only USER "
            "lines are rated, so the columns are probably shifted"
        )
    return _Line(number, role, text, ratings)


def _parse_ratings(path: Path, number: int, field: str) -> tuple[int, ...]:
    if not field.strip():
        return ()

    ratings: list[int] = []
    for item in field.split(","):
        try:
            rating = int(item.strip())
        except ValueError:
            rating = None
        if rating is None or not MIN_RATING <= rating <= MAX_RATING:
            raise DatasetError(
                f"{path}, line {number}: invalid rating {item!r} in {field!r}; ratings are "
                f"integers from {MIN_RATING} to {MAX_RATING}, separated by commas"
            )
        ratings.append(rating)
    return tuple(ratings)


def _build_conversation(
    path: Path, corpus: str, position: int, block: list[_Line]
) -> Conversation:
    overall = block[-1]
    if overall.role is not Role.CUSTOMER or overall.text != OVERALL_TEXT:
        raise DatasetError(
            f"{path}, line {overall.number}: the dialogue starting on line {block[0].number} "
            f"does not end with a 'USER<TAB>{OVERALL_TEXT}' line; every dialogue needs one"
        )

    turn_lines = block[:-1]
    for line in turn_lines:
        if line.role is Role.CUSTOMER and line.text == OVERALL_TEXT:
            raise DatasetError(
                f"{path}, line {line.number}: {OVERALL_TEXT} line inside a dialogue; it must be "
                "the last line, followed by a blank line"
            )

    conversation_id = f"uss-{corpus}-{position:04d}"
    data = {
        "id": conversation_id,
        "source": f"uss-{corpus}",
        "turns": [_turn_data(line) for line in turn_lines],
        "labels": {"overall_satisfaction": majority_rating(overall.ratings)},
    }
    try:
        return parse_conversation(data, line_number=block[0].number)
    except ConversationValidationError as error:
        details = "; ".join(_locate(problem, turn_lines) for problem in error.problems)
        raise DatasetError(
            f"{path}: dialogue {conversation_id} does not fit the conversation schema: {details}"
        ) from None


def _turn_data(line: _Line) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": line.role.value, "text": line.text}
    if line.role is Role.CUSTOMER:
        turn["labels"] = {"satisfaction": majority_rating(line.ratings)}
    return turn


def _locate(problem: Problem, turn_lines: list[_Line]) -> str:
    # Point at the file line of the offending turn, which is what someone fixing the file needs.
    line_number: int | None
    if problem.turn_index is not None and problem.turn_index < len(turn_lines):
        line_number = turn_lines[problem.turn_index].number
    else:
        line_number = problem.line_number
    return f"line {line_number}, field {problem.field!r}: {problem.message}"
