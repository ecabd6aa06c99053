"""Redaction of e-mail addresses, phone numbers and payment card numbers from log output."""

from __future__ import annotations

import logging
import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13 to 19 digits, optionally grouped by spaces or hyphens, as card numbers are written.
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# An international or national number of 7 to 15 digits with the usual separators.
PHONE = re.compile(r"(?<![\w/])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?![\w/])")


def redact(text: str) -> str:
    """Replace e-mail addresses, card numbers and phone numbers in `text` with placeholders."""
    text = EMAIL.sub("[email]", text)
    text = CARD.sub(_card_or_keep, text)
    return PHONE.sub(_phone_or_keep, text)


def _card_or_keep(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if 13 <= len(digits) <= 19 else match.group()


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
