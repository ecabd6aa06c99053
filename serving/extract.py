"""Sentence splitting, entity extraction and detection of suggested steps in conversation text.

Entities are the facts an agent would otherwise have to hunt for in the transcript: error
messages, product versions, order ids, amounts with a currency and deadlines. Each one keeps
its turn index and character span, so a client can highlight it in the transcript. Every
pattern is a compiled regular expression, and when two matches overlap the longer one wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from serving.schema import Conversation, Role


class EntityKind(StrEnum):
    """Kind of an extracted entity."""

    ERROR = "error"
    VERSION = "version"
    ORDER_ID = "order_id"
    AMOUNT = "amount"
    DEADLINE = "deadline"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Frozen):
    """One entity found in a turn; `span` is the [start, end) character range in its text.

    `text` is the match as written and `value` its core: the code of an error, the number of
    a version, the id of an order, the amount as "<number> <ISO 4217 code>" (for example
    "49.99 EUR"), or the deadline phrase.
    """

    kind: EntityKind
    text: str
    value: str
    turn_index: int
    span: tuple[int, int]


class SuggestedStep(_Frozen):
    """A sentence in which the assistant instructs the customer to do something."""

    turn_index: int
    text: str
    span: tuple[int, int]


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------

# A candidate sentence end: terminal punctuation, optional closing quotes or brackets, then
# whitespace. Newlines always end a sentence because chat messages use them for list items.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*\s+|\n+")
_ABBREVIATION_BEFORE_END = re.compile(
    r"\b(?:e\.g|i\.e|etc|vs|mr|mrs|ms|dr|approx|incl|dept)\.$", re.IGNORECASE
)
# "No. 5", "Ref. 1234": these abbreviations end a sentence unless a number follows.
_NUMBER_ABBREVIATION_BEFORE_END = re.compile(r"\b(?:no|nr|ref|tel|pp?)\.$", re.IGNORECASE)
_LIST_MARKER_ONLY = re.compile(r"^\s*(?:step\s*)?\d{1,2}[.)]$", re.IGNORECASE)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return the [start, end) spans of the sentences of `text`, stripped of outer whitespace.

    A sentence ends at '.', '!' or '?' followed by whitespace, or at a line break. Common
    abbreviations ("e.g.", "Dr.", "No.") and list markers ("1.", "Step 2)") do not end one.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for boundary in _SENTENCE_END.finditer(text):
        if not boundary.group().startswith("\n"):
            head = text[start : boundary.start() + 1]
            number_follows = text[boundary.end() : boundary.end() + 1].isdigit()
            if (_ABBREVIATION_BEFORE_END.search(head) or _LIST_MARKER_ONLY.match(head)
                    or (number_follows and _NUMBER_ABBREVIATION_BEFORE_END.search(head))):
                continue
        _append_stripped(spans, text, start, boundary.end())
        start = boundary.end()
    _append_stripped(spans, text, start, len(text))
    return spans


def _append_stripped(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    left = len(piece) - len(piece.lstrip())
    right = len(piece.rstrip())
    if right > left:
        spans.append((start + left, start + right))


# ---------------------------------------------------------------------------------------------
# Entity patterns
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    kind: EntityKind
    regex: re.Pattern[str]
    # Returns the entity value for a match, or None to reject the match.
    value_of: Callable[[re.Match[str]], str | None]


def _group_value(match: re.Match[str]) -> str | None:
    return match.group("value")


_ERROR_WORDS = re.compile(
    r"\b(?:error|errors|fail|fails|failed|failure|invalid|denied|unable|cannot|can['’]t|"
    r"could not|couldn['’]t|not found|timed? ?out|refused|exception|unauthori[sz]ed|forbidden|"
    r"unavailable|went wrong|expired|declined|incorrect|not allowed|crash(?:ed|es)?)\b",
    re.IGNORECASE,
)
# Parts of an upper-case constant that make it an error name (ERR_CONNECTION_REFUSED,
# DNS_PROBE_FINISHED_NXDOMAIN) and not any other constant (MAX_VALUE, HTTP_PROXY).
_ERROR_CONSTANT_PARTS = frozenset({
    "ERR", "ERROR", "FAIL", "FAILED", "FAILURE", "REFUSED", "DENIED", "TIMEOUT", "TIMEDOUT",
    "TIMED", "INVALID", "NXDOMAIN", "UNAVAILABLE", "EXCEPTION", "FORBIDDEN", "UNAUTHORIZED",
    "ABORTED", "UNREACHABLE", "EXPIRED", "MISMATCH", "REJECTED", "CORRUPT", "CORRUPTED",
})


def _error_constant_value(match: re.Match[str]) -> str | None:
    value = match.group("value")
    parts = value.split("_")
    if parts[0] == "E" or any(part in _ERROR_CONSTANT_PARTS for part in parts):
        return value
    if "NOT_FOUND" in value:
        return value
    return None


def _quoted_error_value(match: re.Match[str]) -> str | None:
    value = match.group("value").strip()
    return value if _ERROR_WORDS.search(value) else None


_ERROR_PATTERNS = (
    # "Error 504", "error code E1234", "error: 0x80070005", "err #403", "error code: E-1234"
    _Pattern(EntityKind.ERROR, re.compile(
        r"\b(?:error|err)(?:\s+code)?\s*[:#]?\s*"
        r"(?P<value>0x[0-9a-f]{2,8}|[a-z]{0,4}-?\d{2,6})\b", re.IGNORECASE), _group_value),
    # "HTTP 500", "HTTP error 502", "HTTP status 429"
    _Pattern(EntityKind.ERROR, re.compile(
        r"\bHTTP(?:\s+(?:error|status))?\s*(?P<value>[1-5]\d\d)\b", re.IGNORECASE),
        _group_value),
    # "504 Gateway Timeout", "404 not found"
    _Pattern(EntityKind.ERROR, re.compile(
        r"\b(?P<value>[45]\d\d)\s+(?:bad request|unauthori[sz]ed|forbidden|not found|"
        r"method not allowed|request time-?out|too many requests|internal server error|"
        r"bad gateway|service unavailable|gateway time-?out)\b", re.IGNORECASE), _group_value),
    # Upper-case error constants; the value function keeps only error-like names.
    _Pattern(EntityKind.ERROR, re.compile(r"\b(?P<value>[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b"),
             _error_constant_value),
    # POSIX and Node.js errno names.
    _Pattern(EntityKind.ERROR, re.compile(
        r"\b(?P<value>E(?:CONNREFUSED|CONNRESET|CONNABORTED|TIMEDOUT|HOSTUNREACH|NETUNREACH|"
        r"ADDRINUSE|ACCES|PERM|NOENT|PIPE|NOTFOUND|AI_AGAIN))\b"), _group_value),
    # Exception and error class names: NullPointerException, java.io.IOException, TypeError.
    _Pattern(EntityKind.ERROR, re.compile(
        r"\b(?P<value>(?:[a-zA-Z_]\w*\.)*[A-Z]\w*(?:Exception|Error))\b"), _group_value),
    # A quoted message that reads like an error: "Payment declined", 'invalid password'.
    _Pattern(EntityKind.ERROR, re.compile(
        r"(?:[\"“„«]|(?<!\w)')(?P<value>[^\"“”„«»'\n]{3,160})(?:[\"”»]|'(?!\w))"),
        _quoted_error_value),
)

_PRODUCTS = (
    r"iOS|iPadOS|macOS|watchOS|tvOS|Android|Windows|Chrome|Firefox|Safari|Ubuntu|Debian|Fedora|"
    r"Python|Java|Node(?:\.js)?|PHP|Excel"
)
_VERSION_PATTERNS = (
    # "v2.3.1", "V10.4"; a bare "v2" is too often something else.
    _Pattern(EntityKind.VERSION, re.compile(
        r"\bv(?P<value>\d+(?:\.\d+){1,3})\b", re.IGNORECASE), _group_value),
    # "version 14.2", "ver. 3", "build 4512", "firmware 1.0.7", "updated to 2.4-beta"
    _Pattern(EntityKind.VERSION, re.compile(
        r"\b(?:version|ver\.|build|firmware|update(?:d)?\s+to|upgrade(?:d)?\s+to)\s*"
        r"(?P<value>v?\d+(?:\.\d+){0,3}(?:-(?:alpha|beta|rc|preview|dev)\.?\d*)?)\b",
        re.IGNORECASE), _group_value),
    # "iOS 17", "Android 14", "Windows 11", "Chrome 120.0.6099"
    _Pattern(EntityKind.VERSION, re.compile(
        rf"\b(?P<value>(?:{_PRODUCTS})\s+\d+(?:\.\d+){{0,3}})\b", re.IGNORECASE), _group_value),
)

_ORDER_ID = r"(?=[a-z-]*\d)[a-z0-9][a-z0-9-]{2,}[a-z0-9]"
_ORDER_PATTERNS = (
    # "order #A12345", "order number 123-4567", "order no. 98765", "order ID is XK-2231"
    _Pattern(EntityKind.ORDER_ID, re.compile(
        r"\border\s*(?:#\s*|(?:no\.?|nr\.?|number|num\.?|id|ref(?:erence)?)\s*(?:is\s+)?"
        rf"[:#]?\s*)(?P<value>{_ORDER_ID})\b", re.IGNORECASE), _group_value),
    # "order A12345": without a marker the id must mix letters and digits, so that
    # "order 1000 units" is not taken for an id.
    _Pattern(EntityKind.ORDER_ID, re.compile(
        rf"\border\s+(?P<value>(?=[0-9-]*[a-z]){_ORDER_ID})\b", re.IGNORECASE), _group_value),
)

# Thousands may be separated by ",", "." or "'" (1,234 / 1.234 / 1'234), and a decimal part
# has one or two digits. The lookarounds stop "12345" from being read as "345".
_NUMBER = r"(?<![\d.,])(?P<number>(?:\d{1,3}(?:[,.']\d{3})+|\d+)(?:[.,]\d{1,2})?)(?![\d])"
_CURRENCY_CODES = (
    "USD|EUR|GBP|CHF|JPY|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|INR|CNY|BRL|MXN|ZAR|SGD|HKD"
)
# NOTE: a bare "$" is taken as USD and "¥" as JPY; the symbols are shared by other currencies
# (CAD, AUD, CNY), so the original text stays in `Entity.text`.
_SYMBOL_CODES = {"US$": "USD", "$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_WORD_CODES = {"dollar": "USD", "euro": "EUR", "buck": "USD"}


def _amount_value(match: re.Match[str]) -> str | None:
    groups = match.groupdict()
    if groups.get("symbol"):
        code = _SYMBOL_CODES[groups["symbol"]]
    elif groups.get("code"):
        code = groups["code"].upper()
    else:
        code = _WORD_CODES[groups["word"].lower().rstrip("s")]
    return f"{_parse_amount(groups['number'])} {code}"


def _parse_amount(number: str) -> str:
    # The last separator is the decimal point when one or two digits follow it, otherwise
    # every separator groups thousands: "1.234,5" is 1234.5 and "1,234" is 1234.
    last = max(number.rfind("."), number.rfind(","))
    if last != -1 and len(number) - last - 1 in (1, 2):
        whole, fraction = number[:last], number[last + 1 :]
    else:
        whole, fraction = number, ""
    digits = re.sub(r"[^\d]", "", whole)
    amount = Decimal(f"{digits}.{fraction}") if fraction else Decimal(digits)
    return f"{amount:.2f}" if fraction else str(amount)


_AMOUNT_PATTERNS = (
    # "$49.99", "€ 1.234,56", "US$120"
    _Pattern(EntityKind.AMOUNT, re.compile(
        rf"(?P<symbol>US\$|[$€£¥₹])\s?{_NUMBER}"), _amount_value),
    # "49,99 €", "49.99$"
    _Pattern(EntityKind.AMOUNT, re.compile(rf"{_NUMBER}\s?(?P<symbol>[$€£¥₹])"), _amount_value),
    # "49,99 EUR", "480.00 eur"
    _Pattern(EntityKind.AMOUNT, re.compile(
        rf"{_NUMBER}\s?(?P<code>{_CURRENCY_CODES})\b", re.IGNORECASE), _amount_value),
    # "USD 120", "EUR49"
    _Pattern(EntityKind.AMOUNT, re.compile(
        rf"\b(?P<code>{_CURRENCY_CODES})\s?{_NUMBER}", re.IGNORECASE), _amount_value),
    # "20 dollars", "5 bucks"; "pounds" is left out because it is also a weight.
    _Pattern(EntityKind.AMOUNT, re.compile(
        rf"{_NUMBER}\s(?P<word>dollars?|euros?|bucks)\b", re.IGNORECASE), _amount_value),
)

_WEEKDAY = (r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
            r"mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)")
_MONTH = (r"(?:january|february|march|april|may|june|july|august|september|october|"
          r"november|december|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)")
_ISO_DATE = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)?"
_CLOCK = r"(?:\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)|\d{1,2}:\d{2}|noon|midnight)"
_DAY = (
    rf"(?:today|tonight|tomorrow(?:\s+(?:morning|afternoon|evening|night))?|"
    rf"end\s+of\s+(?:the\s+)?(?:business\s+)?(?:day|week|month)|eod|eow|close\s+of\s+business|"
    rf"(?:this|next)\s+(?:week|month|{_WEEKDAY})|{_WEEKDAY}(?:\s+(?:morning|afternoon|evening))?|"
    rf"the\s+\d{{1,2}}(?:st|nd|rd|th)|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?|"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}|{_ISO_DATE})"
)
_DURATION_COUNT = (r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|"
                   r"twenty[- ]four|forty[- ]eight|seventy[- ]two)")
_DURATION_UNIT = r"(?:business\s+|working\s+)?(?:minutes?|mins?|hours?|hrs?|days?|weeks?)"


_ISO_DATE_PATTERN = re.compile(_ISO_DATE)


def _is_calendar_date(text: str) -> bool:
    # The pattern accepts 2024-13-45 and 2024-02-30; only real dates and times are kept.
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _iso_date_value(match: re.Match[str]) -> str | None:
    return match.group("value") if _is_calendar_date(match.group("value")) else None


def _deadline_value(match: re.Match[str]) -> str | None:
    dates = _ISO_DATE_PATTERN.findall(match.group(0))
    return match.group(0) if all(_is_calendar_date(date) for date in dates) else None


_DEADLINE_PATTERNS = (
    # "by Friday", "before 5pm", "by tomorrow at 9am", "no later than 2024-06-01", "due Monday"
    _Pattern(EntityKind.DEADLINE, re.compile(
        rf"\b(?:by|before|until|till|no\s+later\s+than|due)\s+"
        rf"(?:{_DAY}(?:\s+(?:at\s+)?{_CLOCK})?|{_CLOCK}(?:\s+{_DAY})?)(?![\w-])", re.IGNORECASE),
        _deadline_value),
    # "within 24 hours", "in the next two days"
    _Pattern(EntityKind.DEADLINE, re.compile(
        rf"\b(?:within|in\s+the\s+next)\s+(?:the\s+next\s+)?{_DURATION_COUNT}\s+"
        rf"{_DURATION_UNIT}\b", re.IGNORECASE), _deadline_value),
    # A bare "today", "tonight" or "tomorrow", because in support chats these mostly state
    # when the customer needs something. "today's" is an attribute, not a deadline.
    _Pattern(EntityKind.DEADLINE, re.compile(
        r"\b(?:today|tonight|tomorrow)\b(?!['’]s)", re.IGNORECASE), _deadline_value),
    # An ISO 8601 date, with an optional time.
    _Pattern(EntityKind.DEADLINE, re.compile(rf"(?<![\d-])(?P<value>{_ISO_DATE})(?![\d:])"),
             _iso_date_value),
)

ENTITY_PATTERNS: tuple[_Pattern, ...] = (
    *_ERROR_PATTERNS, *_VERSION_PATTERNS, *_ORDER_PATTERNS, *_AMOUNT_PATTERNS,
    *_DEADLINE_PATTERNS,
)


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


def extract_entities(text: str, turn_index: int) -> list[Entity]:
    """Return the entities of one message, in text order, without overlaps.

    When matches overlap, the longest is kept, and among equally long ones the kind that
    comes first in ENTITY_PATTERNS (errors, versions, order ids, amounts, deadlines).
    """
    candidates = list(_candidates(text, turn_index))
    candidates.sort(key=lambda item: (-(item[1].span[1] - item[1].span[0]), item[0],
                                      item[1].span[0]))

    chosen: list[Entity] = []
    for _, entity in candidates:
        if not any(_overlaps(entity.span, other.span) for other in chosen):
            chosen.append(entity)
    return sorted(chosen, key=lambda entity: entity.span)


def _candidates(text: str, turn_index: int) -> Iterator[tuple[int, Entity]]:
    for priority, pattern in enumerate(ENTITY_PATTERNS):
        for match in pattern.regex.finditer(text):
            value = pattern.value_of(match)
            if value is None:
                continue
            yield priority, Entity(kind=pattern.kind, text=match.group(0), value=value,
                                   turn_index=turn_index, span=match.span())


def _overlaps(first: tuple[int, int], second: tuple[int, int]) -> bool:
    return first[0] < second[1] and second[0] < first[1]


def extract_conversation_entities(
    conversation: Conversation, roles: Iterable[Role] = (Role.CUSTOMER,)
) -> list[Entity]:
    """Return the entities of every turn written by one of `roles`, in conversation order."""
    selected_roles = frozenset(roles)
    entities: list[Entity] = []
    for index, turn in enumerate(conversation.turns):
        if turn.role in selected_roles:
            entities.extend(extract_entities(turn.text, index))
    return entities


# ---------------------------------------------------------------------------------------------
# Suggested steps
# ---------------------------------------------------------------------------------------------

_STEP_VERBS = (
    r"try|retry|re-?try|restart|re-?start|reboot|reinstall|install|uninstall|update|upgrade|"
    r"downgrade|clear|go(?!\s+ahead)|click|tap|double-click|right-click|open|close|select|"
    r"choose|enter|re-?enter|type|check(?!\s+(?:out|in\s+time)\b)|ensure|make\s+sure|"
    r"log\s+(?:out|in|off|on)|sign\s+(?:out|in)|reset|delete|remove|disable|enable|"
    r"turn\s+(?:off|on)|switch|toggle|navigate|press|refresh|reload|visit|use|change|set|"
    r"unplug|plug|connect|disconnect|reconnect|download|upload|copy|paste|follow|scroll|run|"
    r"force[- ](?:quit|stop|close)|quit|allow|grant|add|attach|send|"
    r"contact(?!\s+(?:number|details|info))|call|submit|power\s+(?:off|on|cycle)|"
    r"wait(?!\s+(?:while|a\s+moment|a\s+second|a\s+minute))"
)
_STEP_START = re.compile(
    r"^(?:(?:step\s*)?\d{1,2}[.):]\s*|[-*•]\s+)?"
    r"(?:(?:first|then|next|after\s+that|finally|also|now|alternatively)\s*,?\s+)?"
    r"(?:please\s+|pls\s+|kindly\s+)?"
    r"(?:(?:you\s+(?:can|could|may|might|should|need\s+to|will\s+need\s+to|must)|"
    r"i\s+(?:would\s+)?(?:suggest|recommend)(?:\s+that\s+you)?|i['’]d\s+(?:suggest|recommend)|"
    r"(?:could|can|would)\s+you(?:\s+please)?|try\s+to|make\s+sure\s+(?:to|you))\s+)?"
    r"(?:please\s+)?"
    # A hyphen after the verb makes a noun: "Check-in is at 3pm", "Log-in page".
    rf"(?:{_STEP_VERBS})\b(?!-)",
    re.IGNORECASE,
)
# "1. Settings > Privacy" is a step even when its first word is not in _STEP_VERBS.
_NUMBERED_ITEM = re.compile(r"^(?:step\s*)?\d{1,2}[.)]\s+\S", re.IGNORECASE)


def is_instruction(sentence: str) -> bool:
    """Return whether a sentence is an instruction to the reader or a numbered step."""
    stripped = sentence.strip()
    return bool(_STEP_START.match(stripped) or _NUMBERED_ITEM.match(stripped))


def suggested_steps(
    conversation: Conversation, roles: Iterable[Role] = (Role.ASSISTANT,)
) -> list[SuggestedStep]:
    """Return the instructing sentences of the turns written by `roles`, first time each.

    A sentence repeated later, compared without case and extra whitespace, is listed once at
    its first occurrence.
    """
    selected_roles = frozenset(roles)
    seen: set[str] = set()
    steps: list[SuggestedStep] = []
    for index, turn in enumerate(conversation.turns):
        if turn.role not in selected_roles:
            continue
        for start, end in split_sentences(turn.text):
            sentence = turn.text[start:end]
            key = " ".join(sentence.lower().split())
            if key in seen or not is_instruction(sentence):
                continue
            seen.add(key)
            steps.append(SuggestedStep(turn_index=index, text=sentence, span=(start, end)))
    return steps
