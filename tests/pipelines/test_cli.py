"""Tests of the `escalation` command line on the small real bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.datasets.uss import read_bundled_uss
from serving.schema import write_conversations
from tests.conftest import REPOSITORY, TrainedBundle

runner = CliRunner()


def test_every_command_has_help() -> None:
    for command in ("train", "evaluate", "export", "score", "serve", "run", "apikey"):
        result = runner.invoke(app, [command, "--help"])

        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_evaluate_raw_uss_file_prints_json(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    # A held-out USS corpus arrives in the original format, so a small real one is used here.
    source = REPOSITORY / "data" / "raw" / "uss" / "SGD.txt.gz"
    import gzip

    blocks = gzip.open(source, "rt", encoding="utf-8").read().split("\n\n")[:40]
    sample = tmp_path / "Sample.txt"
    sample.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")

    result = runner.invoke(app, ["evaluate", "--bundle", str(trained_bundle.path),
                                 "--data", str(sample), "--json"])

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert metrics["escalation"]["n_conversations"] == 40
    assert "rules" in metrics["escalation"]
    assert "lead_time" in metrics["escalation"]["model"]


def test_evaluate_goemotions_file(trained_bundle: TrainedBundle) -> None:
    path = REPOSITORY / "data" / "raw" / "goemotions" / "dev.tsv.gz"

    result = runner.invoke(app, ["evaluate", "--bundle", str(trained_bundle.path),
                                 "--data", str(path), "--json"])

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert metrics["sentiment"]["model"]["n"] == 5426
    assert "vader" in metrics["frustration"]


def test_score_writes_one_line_per_conversation(trained_bundle: TrainedBundle,
                                                tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_conversations(read_bundled_uss()[:3], source)
    output = tmp_path / "out.jsonl"

    result = runner.invoke(app, ["score", str(source), "-o", str(output), "--bundle",
                                 str(trained_bundle.path)])

    assert result.exit_code == 0, result.output
    lines = output.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["conversation_id"] == "uss-mwoz-0001"


def test_bad_input_file_reports_lines(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "a", "turns": []}\nnot json\n', encoding="utf-8")
    command = [sys.executable, "-m", "pipelines.cli", "score", str(source), "-o",
               str(tmp_path / "out.jsonl"), "--bundle", str(trained_bundle.path)]

    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True)

    assert result.returncode == 2
    assert "line 1" in result.stderr
    assert "line 2" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_unknown_data_format_is_explained(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n", encoding="utf-8")
    command = [sys.executable, "-m", "pipelines.cli", "evaluate", "--bundle",
               str(trained_bundle.path), "--data", str(path)]

    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True)

    assert result.returncode == 2
    assert "unknown data format" in result.stderr
