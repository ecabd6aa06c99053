"""Typed conversation schema and its JSON Lines interchange format.

A conversation is an ordered list of turns between a customer and the support side (the AI
assistant, a human agent, or the system). Optional labels carry ground truth for training.
`parse_conversation` and `read_conversations` turn raw JSON into these models and report each
problem with the conversation id, the turn index and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from serving.errors import ConversationFileError, ConversationValidationError

SCHEMA_VERSION = "1.0"

# Longer messages are pasted logs or documents rather than chat. The encoder reads at most
# 256 tokens anyway, so more text only costs memory and time.
MAX_TEXT_CHARS = 8_000
MAX_TURNS = 1_000
MAX_ID_CHARS = 200


class Role(StrEnum):
    """Role of the author of a turn."""

    CUSTOMER = "customer"
    ASSISTANT = "assistant"
    AGENT = "agent"
    SYSTEM = "system"


class Sentiment(StrEnum):
    """Three-class sentiment of a customer message."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


SENTIMENT_CLASSES: tuple[Sentiment, ...] = (
    Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Label fields take strict types, because a lax integer would read `true` as rating 1 (very
# dissatisfied) and "3" as 3, so a mislabelled file would train and score silently.
class TurnLabels(_Strict):
    """Ground truth for one turn, used for training and evaluation only."""

    satisfaction: StrictInt | None = Field(default=None, ge=1, le=5)
    sentiment: Sentiment | None = None
    frustration: StrictBool | None = None
    handoff: StrictBool | None = None


class Turn(_Strict):
    """One message of a conversation."""

    role: Role
    text: str = Field(max_length=MAX_TEXT_CHARS)
    timestamp: datetime | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    kb_results: int | None = Field(default=None, ge=0)
    csat: int | None = Field(default=None, ge=1, le=5)
    labels: TurnLabels | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> Turn:
        if self.role is not Role.ASSISTANT:
            for name in ("confidence", "kb_results"):
                if getattr(self, name) is not None:
                    raise PydanticCustomError(
                        "assistant_only",
                        "only assistant turns may carry '{field}', this turn's role is '{role}'",
                        {"field": name, "role": self.role.value},
                    )
        if self.role is not Role.CUSTOMER and self.csat is not None:
            raise PydanticCustomError(
                "customer_only",
                "only customer turns may carry 'csat', this turn's role is '{role}'",
                {"field": "csat", "role": self.role.value},
            )
        return self


class CustomerProfile(_Strict):
    """Customer details from the support platform; every field is optional."""

    customer_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    name: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    email: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    plan: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    account_value: float | None = Field(default=None, ge=0.0)
    vip: bool = False
    enterprise: bool = False
    past_due: bool = False
    region: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    previous_escalations: int = Field(default=0, ge=0)


class ConversationLabels(_Strict):
    """Conversation-level ground truth, used for training and evaluation only."""

    escalated: StrictBool | None = None
    escalation_turn: StrictInt | None = Field(default=None, ge=0)
    escalation_reason: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    overall_satisfaction: StrictInt | None = Field(default=None, ge=1, le=5)


class Conversation(_Strict):
    """A support conversation: the customer and the turns, in order."""

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    channel: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    started_at: datetime | None = None
    source: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    customer: CustomerProfile | None = None
    turns: list[Turn] = Field(max_length=MAX_TURNS)
    labels: ConversationLabels | None = None

    @model_validator(mode="after")
    def _check_turn_order(self) -> Conversation:
        if not self.turns:
            raise PydanticCustomError(
                "empty_conversation",
                "a conversation needs at least one turn, 'turns' is empty",
                {"field": "turns"},
            )

        previous: datetime | None = self.started_at
        previous_index: int | None = None
        for index, turn in enumerate(self.turns):
            if turn.timestamp is None:
                continue
            if previous is not None and _as_comparable(turn.timestamp) < _as_comparable(previous):
                before = "'started_at'" if previous_index is None else f"turn {previous_index}"
                raise PydanticCustomError(
                    "timestamp_order",
                    "timestamp {value} is earlier than {before} ({previous}); "
                    "turns must be in chronological order",
                    {
                        "turn_index": index,
                        "field": "timestamp",
                        "value": turn.timestamp.isoformat(),
                        "before": before,
                        "previous": previous.isoformat(),
                    },
                )
            previous = turn.timestamp
            previous_index = index

        escalation_turn = self.labels.escalation_turn if self.labels else None
        if escalation_turn is not None and escalation_turn >= len(self.turns):
            raise PydanticCustomError(
                "escalation_turn_range",
                "labels.escalation_turn is {value} but the conversation has {count} turns",
                {"field": "labels.escalation_turn", "value": escalation_turn,
                 "count": len(self.turns)},
            )
        return self

    def customer_turn_indices(self) -> list[int]:
        """Return the indices of the customer's turns, in order."""
        return [index for index, turn in enumerate(self.turns) if turn.role is Role.CUSTOMER]


def _as_comparable(moment: datetime) -> datetime:
    # Naive timestamps are taken as UTC so that a file mixing both forms can still be ordered.
    if moment.tzinfo is None:
        from datetime import UTC

        return moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True)
class Problem:
    """One schema violation, located as precisely as the input allows."""

    conversation_id: str | None
    turn_index: int | None
    field: str
    message: str
    line_number: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.line_number is not None:
            parts.append(f"line {self.line_number}")
        parts.append(f"conversation {self.conversation_id!r}" if self.conversation_id else
                     "conversation without an id")
        if self.turn_index is not None:
            parts.append(f"turn {self.turn_index}")
        parts.append(f"field {self.field!r}")
        return ", ".join(parts) + f": {self.message}"


def parse_conversation(data: Any, *, line_number: int | None = None) -> Conversation:
    """Validate one decoded JSON object as a Conversation.

    Raises ConversationValidationError listing every problem, each with the conversation id,
    the turn index and the field.
    """
    conversation_id = _peek_id(data)
    if not isinstance(data, dict):
        raise ConversationValidationError([Problem(
            None, None, "(conversation)", f"expected a JSON object, got "
            f"{type(data).__name__} {_short_repr(data)}", line_number)])
    try:
        return Conversation.model_validate(data)
    except ValidationError as error:
        problems = [
            _problem_from_error(detail, conversation_id, line_number)
            for detail in error.errors(include_url=False)
        ]
        raise ConversationValidationError(problems) from None


def _peek_id(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return data["id"]
    return None


def _problem_from_error(
    detail: Any, conversation_id: str | None, line_number: int | None
) -> Problem:
    location = list(detail.get("loc", ()))
    context = detail.get("ctx") or {}
    turn_index: int | None = None
    if len(location) >= 2 and location[0] == "turns" and isinstance(location[1], int):
        turn_index = location[1]
        location = location[2:]
    if "turn_index" in context:
        turn_index = int(context["turn_index"])

    field = str(context.get("field") or ".".join(str(part) for part in location) or "turns")
    if field.startswith("turns.") and turn_index is not None:
        field = field.removeprefix("turns.")

    message = detail.get("msg", "invalid value")
    if detail.get("type") not in {"missing", "timestamp_order", "empty_conversation",
                                  "assistant_only", "customer_only", "escalation_turn_range"}:
        value = detail.get("input")
        value_text = f"{len(value)} characters" if detail.get("type") == "string_too_long" and \
            isinstance(value, str) else _short_repr(value)
        message = f"{message} (got {value_text})"
    return Problem(conversation_id, turn_index, field, message, line_number)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def iter_conversation_lines(path: Path) -> Iterator[tuple[int, Conversation | Exception]]:
    """Yield (line number, Conversation or the error for that line) for a JSON Lines file.

    Blank lines are skipped. Line numbers start at 1, as editors show them.
    """
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if line_number == 1 and raw.startswith(UTF8_BOM):
                # Some editors save UTF-8 with a byte order mark, which is not part of the data.
                raw = raw[len(UTF8_BOM):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield line_number, ConversationValidationError(
                    [Problem(None, None, "(encoding)", f"not valid UTF-8 at byte {error.start}; "
                             "save the file as UTF-8", line_number)]
                )
                continue
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                yield line_number, ConversationValidationError(
                    [Problem(None, None, "(json)", f"not valid JSON: {error.msg} at column "
                             f"{error.colno}", line_number)]
                )
                continue
            except RecursionError:
                yield line_number, ConversationValidationError(
                    [Problem(None, None, "(json)", "not valid JSON: arrays or objects are "
                             "nested too deeply to decode; a conversation needs only a few "
                             "levels", line_number)]
                )
                continue
            try:
                yield line_number, parse_conversation(data, line_number=line_number)
            except ConversationValidationError as error:
                yield line_number, error


def read_conversations(path: str | Path) -> list[Conversation]:
    """Read a JSON Lines file of conversations, one per line.

    Every bad line is reported, not only the first: ConversationFileError lists each problem
    with its line number. Conversation ids must be unique within the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"conversation file not found: {path}; pass a JSON Lines file "
                                "with one conversation per line (see data/README.md)")

    conversations: list[Conversation] = []
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    for line_number, item in iter_conversation_lines(path):
        if isinstance(item, ConversationValidationError):
            problems.extend(item.problems)
            continue
        assert isinstance(item, Conversation)
        if item.id in first_line_of:
            problems.append(Problem(item.id, None, "id", "duplicate conversation id, first "
                                    f"seen on line {first_line_of[item.id]}", line_number))
            continue
        first_line_of[item.id] = line_number
        conversations.append(item)

    if problems:
        error = ConversationFileError(path, problems)
        hint = foreign_format_hint(path) if not conversations else None
        if hint is not None:
            # The hint leads, because fifty per-line errors hide that the whole file is wrong.
            error.args = (f"{hint}\n{error}",)
        raise error
    return conversations


# The byte order mark some editors write at the start of a UTF-8 file.
UTF8_BOM = b"\xef\xbb\xbf"
# The first bytes of a gzip stream (RFC 1952, section 2.3.1).
GZIP_MAGIC = b"\x1f\x8b"
USS_ROLES = ("USER", "SYSTEM")
_SNIFF_LINES = 5


def foreign_format_hint(path: Path) -> str | None:
    """Return a sentence saying which other format `path` looks like, or None.

    Only the first lines are read. Recognised: gzip-compressed data, a JSON array or
    pretty-printed JSON, and the tab-separated dialogue lines of the USS corpora (`USER` or
    `SYSTEM`, a tab, the text).
    """
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if head.startswith(GZIP_MAGIC):
        return (f"{path} is not JSON Lines: it starts with the gzip magic bytes 1f 8b, so it "
                "is gzip-compressed. Decompress it (gunzip), or, if it holds USS dialogues, "
                "name it .txt.gz so that evaluate, backtest, tune and report read it as USS")

    lines = [line for line in head.decode("utf-8", errors="replace").splitlines()
             if line.strip()][:_SNIFF_LINES]
    if lines and lines[0].lstrip().startswith("["):
        return (f"{path} is not JSON Lines: it starts with '[', so it looks like one JSON "
                "array. Write one conversation object per line instead, for example with "
                f"jq -c '.[]' {path} > conversations.jsonl")
    if lines and lines[0].strip() == "{":
        return (f"{path} is not JSON Lines: its first line is a lone '{{', so it looks like "
                "pretty-printed JSON. Write each conversation on one line, for example with "
                f"jq -c . {path} > conversations.jsonl")
    if lines and all(line.split("\t", 1)[0] in USS_ROLES and "\t" in line for line in lines):
        return (f"{path} is not JSON Lines: its lines are tab-separated USS dialogue text "
                "(USER or SYSTEM, a tab, the text). Name it .txt (or .txt.gz when compressed) "
                "so that evaluate, backtest, tune and report read it as USS")
    return None


def write_conversations(conversations: Iterable[Conversation], path: str | Path) -> int:
    """Write conversations as JSON Lines, leaving out unset fields; return the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for conversation in conversations:
            handle.write(conversation.model_dump_json(exclude_none=True) + "\n")
            count += 1
    return count
