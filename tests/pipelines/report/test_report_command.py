"""Tests of `escalation report`: a run on a labelled file and one-line errors on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.errors import ReportError
from serving.schema import parse_conversation, write_conversations
from tests.conftest import REPOSITORY, TrainedBundle
from tests.pipelines.report.conftest import parse_page

runner = CliRunner()


def _run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    # main() as the console script calls it, so the error reaches stderr as a user sees it.
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "report",
               *arguments]
    return subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_report_command_writes_page(trained_bundle: TrainedBundle, labelled_file: Path,
                                    tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report.html"

    result = runner.invoke(app, ["report", "--bundle", str(trained_bundle.path),
                                 "--data", str(labelled_file), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    page = parse_page(out.read_text(encoding="utf-8"))
    assert page.problems == []
    assert str(labelled_file) in "".join(page.text)
    assert not list(out.parent.glob("*.partial"))
    assert not list(out.parent.glob(".report-probe-*"))


def test_report_is_listed_in_help() -> None:
    result = runner.invoke(app, ["report", "--help"])

    assert result.exit_code == 0
    assert "--out" in result.output
    assert "--data" in result.output


def test_missing_bundle_is_one_line(tmp_path: Path, labelled_file: Path) -> None:
    missing = tmp_path / "no-such-bundle"

    result = _run_cli("--bundle", str(missing), "--data", str(labelled_file),
                      "--out", str(tmp_path / "report.html"))

    assert result.returncode == 2
    errors = _error_lines(result)
    assert len(errors) == 1, result.stderr
    assert str(missing) in errors[0]
    assert "escalation train" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "report.html").exists()


def test_unlabelled_data_is_rejected(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    data = tmp_path / "unlabelled.jsonl"
    write_conversations([parse_conversation({
        "id": "plain-1",
        "turns": [{"role": "customer", "text": "Where is my parcel?"},
                  {"role": "assistant", "text": "It arrives tomorrow."}],
    })], data)

    result = runner.invoke(app, ["report", "--bundle", str(trained_bundle.path), "--data",
                                 str(data), "--out", str(tmp_path / "report.html")])

    assert isinstance(result.exception, ReportError)
    message = str(result.exception)
    assert "\n" not in message
    assert str(data) in message
    assert "labels.sentiment" in message
    assert "labelled data" in message
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(("case", "fix"), [("parent is a file", "pass an output path in a "
                                             "writable folder"),
                                            ("out is a folder", "pass a file path")])
def test_unwritable_out_is_rejected(case: str, fix: str, tmp_path: Path,
                                    labelled_file: Path) -> None:
    blocker = tmp_path / "blocker"
    if case == "parent is a file":
        blocker.write_text("not a folder", encoding="utf-8")
        out = blocker / "report.html"
    else:
        blocker.mkdir()
        out = blocker

    # The output is checked before the bundle, so a missing bundle does not hide the error.
    result = runner.invoke(app, ["report", "--bundle", str(tmp_path / "no-bundle"), "--data",
                                 str(labelled_file), "--out", str(out)])

    assert isinstance(result.exception, ReportError)
    message = str(result.exception)
    assert "\n" not in message
    assert str(out) in message
    assert fix in message
