"""Redaction of e-mail addresses, phone numbers and payment card numbers from log output."""

from __future__ import annotations

import logging
import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Card numbers as people write them: 13 to 19 digits in one run, four groups of four (the last
# up to seven), or American Express's 4-6-5. A Luhn check then rejects most other numbers.
CARD = re.compile(
    r"\b(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{5})\b"
)
# An international or national number of 7 to 15 digits with the usual separators.
# A number glued to a word by "-" or "." (ids like escalation-20261204-211736) is not one.
PHONE = re.compile(r"(?<![\w/.-])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?![\w/])")


def redact(text: str) -> str:
    """Replace e-mail addresses, card numbers and phone numbers in `text` with placeholders."""
    text = EMAIL.sub("[email]", text)
    text = CARD.sub(_card_or_keep, text)
    return PHONE.sub(_phone_or_keep, text)


def _card_or_keep(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if 13 <= len(digits) <= 19 and passes_luhn(digits) else match.group()


def passes_luhn(digits: str) -> bool:
    """Return True when a digit string has a valid Luhn check digit, as card numbers do."""
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phone_or_keep(match: re.Match[str]) -> str:
    if ISO_DATE.fullmatch(match.group().strip()):
        return match.group()
    digits = re.sub(r"\D", "", match.group())
    return "[phone]" if 7 <= len(digits) <= 15 else match.group()


class RedactingFilter(logging.Filter):
    """Log filter that redacts personal data from the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the redacting filter to every handler of `logger` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
