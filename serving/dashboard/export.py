"""CSV export of the dashboard's tables, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

# A cell starting with one of these is read as a formula by Excel and LibreOffice, and a
# conversation id or bundle name is chosen by the client, so such text is quoted first.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Return the table as CSV text with a header line, writing lists and dicts as JSON."""
    buffer = io.StringIO()
    # The writer quotes a line break only when its characters are in the line terminator, so
    # "\n" alone would leave a carriage return bare. CRLF is also the RFC 4180 line end.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return buffer.getvalue()


def csv_cell(value: Any) -> Any:
    """Return one cell value as written to CSV: None is empty, text that a spreadsheet would
    run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        value = json.dumps(value, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value
