"""Fixtures of the report tests: a small labelled file, its report, and an HTML page reader."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pipelines.report.writer import write_report
from serving.schema import Conversation, parse_conversation, write_conversations
from tests.conftest import TrainedBundle

# Markup in data that the page must show as text, never as tags.
HOSTILE_SOURCE = "<b>partner</b> & co"
HOSTILE_REASON = "<script>alert('reason')</script>"

# HTML elements without an end tag.
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                 "source", "track", "wbr"}

# (source, labelled reason, [(customer text, satisfaction, sentiment, frustrated), ...]).
# The ratings put dissatisfied turns early, late and nowhere, so the data has both label values
# and conversations with and without dissatisfaction.
DIALOGUES: list[tuple[str | None, str | None, list[tuple[str, int, str, bool]]]] = [
    ("shop-web", "billing", [
        ("I was charged twice for my order, can you check?", 3, "neutral", False),
        ("It has been a week and the refund is still not there.", 2, "negative", True),
        ("This is ridiculous, I want a human to fix this now.", 1, "negative", True),
    ]),
    ("shop-web", None, [
        ("Hi, where can I change my delivery address?", 3, "neutral", False),
        ("Great, that worked, thank you!", 4, "positive", False),
    ]),
    ("shop-web", "technical", [
        ("The app crashes every time I open the basket.", 3, "negative", True),
        ("I already reinstalled it twice.", 3, "negative", True),
        ("Still broken. Nothing you suggest works.", 2, "negative", True),
        ("Forget it, I am cancelling my account.", 1, "negative", True),
    ]),
    (HOSTILE_SOURCE, HOSTILE_REASON, [
        ("Can I upgrade my plan to the business tier?", 3, "neutral", False),
        ("Perfect, please go ahead.", 5, "positive", False),
    ]),
    (HOSTILE_SOURCE, None, [
        ("My password reset email never arrives.", 3, "negative", False),
        ("I checked spam, it is not there either.", 2, "negative", True),
        ("Thanks, the new link worked.", 3, "positive", False),
    ]),
    (None, "billing", [
        ("Why is my invoice higher this month?", 3, "neutral", False),
        ("I never agreed to that add-on. Remove it immediately.", 2, "negative", True),
    ]),
]


def labelled_conversations() -> list[Conversation]:
    """Build the small labelled conversations the report tests read."""
    conversations = []
    for number, (source, reason, customer_turns) in enumerate(DIALOGUES, start=1):
        turns: list[dict[str, Any]] = []
        for text, satisfaction, sentiment, frustrated in customer_turns:
            turns.append({"role": "customer", "text": text,
                          "labels": {"satisfaction": satisfaction, "sentiment": sentiment,
                                     "frustration": frustrated}})
            turns.append({"role": "assistant", "text": "Let me look into that for you."})
        data: dict[str, Any] = {"id": f"report-test-{number}", "turns": turns}
        if source is not None:
            data["source"] = source
        if reason is not None:
            data["labels"] = {"escalation_reason": reason}
        conversations.append(parse_conversation(data))
    return conversations


@pytest.fixture(scope="module")
def labelled_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the labelled conversations as JSON Lines."""
    path = tmp_path_factory.mktemp("report-data") / "labelled.jsonl"
    write_conversations(labelled_conversations(), path)
    return path


@pytest.fixture(scope="module")
def report_page(trained_bundle: TrainedBundle,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Write the report of the test bundle on the labelled conversations once per module."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    path = write_report(trained_bundle.path, out, labelled_conversations(),
                        data_description="report test conversations")
    yield path, path.read_text(encoding="utf-8")


class ParsedPage(HTMLParser):
    """Tags, ids, attributes, text and table cells of an HTML page, with nesting checks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.problems: list[str] = []
        self.text: list[str] = []
        self._open: list[str] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            identifier = str(attributes["id"])
            if identifier in self.ids:
                self.problems.append(f"duplicate id {identifier!r}")
            self.ids.add(identifier)
        if tag == "table" and attributes.get("id"):
            self._table = self.tables.setdefault(str(attributes["id"]), [])
        if tag == "tr" and self._table is not None:
            self._table.append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag not in VOID_ELEMENTS:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self._open[-1] if self._open else None}>")
            return
        self._open.pop()
        if tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def finish(self) -> ParsedPage:
        """Close the parser and record any element left open."""
        self.close()
        if self._open:
            self.problems.append(f"unclosed elements {self._open}")
        return self


def parse_page(html: str) -> ParsedPage:
    """Parse a page and return what it contains."""
    page = ParsedPage()
    page.feed(html)
    return page.finish()
