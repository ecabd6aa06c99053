"""Tests that logs never carry e-mail addresses, phone numbers or card numbers."""

from __future__ import annotations

import logging

import pytest

from serving.redact import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jo.doe@example.com now", "mail [email] now"),
        ("card 4111 1111 1111 1111 declined", "card [card] declined"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("amex 3782 822463 10005", "amex [card]"),
        ("pan 4111111111111111", "pan [card]"),
        ("call +1 (415) 555-0199", "call [phone]"),
        ("call 030 1234567", "call [phone]"),
    ],
)
def test_personal_data_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "conversation uss-mwoz-0001 turn 3",
        "scored in 12.5 ms",
        "version 2.3.1",
        "on 2024-05-14 at 10:30",
        "order 12345",
        "bundle escalation-20261204-211736 verified",
        "1234 5678 9012 3456 fails the Luhn check",
    ],
)
def test_ordinary_log_text_kept(text: str) -> None:
    assert redact(text) == text


def test_filter_redacts_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.redact")
    handler = caplog.handler
    handler.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="tests.redact"):
            logger.info("customer %s wrote from %s", "ana@example.org", "+44 20 7946 0958")
    finally:
        handler.removeFilter(handler.filters[-1])

    assert "ana@example.org" not in caplog.text
    assert "[email]" in caplog.text
    assert "[phone]" in caplog.text
