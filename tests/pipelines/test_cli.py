"""Tests of the `escalation` command line on the small real bundle."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.cli_common import check_output_path, read_data_files
from pipelines.datasets.uss import read_bundled_uss
from serving.errors import SchemaError
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


def test_score_leaves_side_files_alone(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    # A fixed temporary name such as "<output>.partial" could be an input or an unrelated
    # file, which the write would overwrite and then remove.
    source = tmp_path / "out.jsonl.partial"
    write_conversations(read_bundled_uss()[:2], source)
    unrelated = tmp_path / "other.jsonl.partial"
    unrelated.write_text("keep me\n", encoding="utf-8")

    first = runner.invoke(app, ["score", str(source), "-o", str(tmp_path / "out.jsonl"),
                                "--bundle", str(trained_bundle.path)])
    second = runner.invoke(app, ["score", str(source), "-o", str(tmp_path / "other.jsonl"),
                                 "--bundle", str(trained_bundle.path)])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert len(source.read_text(encoding="utf-8").splitlines()) == 2
    assert unrelated.read_text(encoding="utf-8") == "keep me\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "other.jsonl", "other.jsonl.partial", "out.jsonl", "out.jsonl.partial"]


def test_score_keeps_an_existing_output_without_force(trained_bundle: TrainedBundle,
                                                       tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_conversations(read_bundled_uss()[:2], source)
    output = tmp_path / "out.jsonl"
    output.write_text("earlier scores\n", encoding="utf-8")
    arguments = ["score", str(source), "-o", str(output), "--bundle", str(trained_bundle.path)]

    refused = runner.invoke(app, arguments)
    assert refused.exit_code != 0
    assert output.read_text(encoding="utf-8") == "earlier scores\n"

    onto_input = runner.invoke(app, ["score", str(source), "-o", str(source), "--bundle",
                                     str(trained_bundle.path), "--force"])
    assert onto_input.exit_code != 0
    assert len(source.read_text(encoding="utf-8").splitlines()) == 2

    forced = runner.invoke(app, [*arguments, "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(output.read_text(encoding="utf-8").splitlines()) == 2


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


def _plain_output(output: str) -> str:
    # rich draws usage errors in a box, so the frame is dropped and the lines joined.
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def _write_lines(path: Path, *ids: str) -> Path:
    rows = [{"id": item, "turns": [{"role": "customer", "text": "where is my order"}]}
            for item in ids]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


OUTPUT_COMMANDS = {
    "tune": ["tune", "--max-escalation-rate", "0.5", "--out"],
    "backtest": ["backtest", "--changes-out"],
    "report": ["report", "--out"],
}


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_output_equal_to_data_is_rejected(command: str, tmp_path: Path) -> None:
    data = _write_lines(tmp_path / "past.jsonl", "a", "b")
    before = data.read_bytes()
    # The check runs before the bundle is loaded, so a folder that is no bundle is enough.
    bundle = tmp_path / "bundle"
    bundle.mkdir()

    result = runner.invoke(app, [*OUTPUT_COMMANDS[command], str(data), "--data", str(data),
                                 "--bundle", str(bundle), "--force"])

    assert result.exit_code == 2, result.output
    assert "is the --data input" in _plain_output(result.output)
    assert data.read_bytes() == before


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_existing_output_needs_force(command: str, tmp_path: Path) -> None:
    data = _write_lines(tmp_path / "past.jsonl", "a")
    existing = tmp_path / "keep.out"
    existing.write_text("keep me", encoding="utf-8")
    bundle = tmp_path / "bundle"
    bundle.mkdir()

    result = runner.invoke(app, [*OUTPUT_COMMANDS[command], str(existing), "--data", str(data),
                                 "--bundle", str(bundle)])

    assert result.exit_code == 2, result.output
    assert "pass --force to overwrite it" in _plain_output(result.output)
    assert existing.read_text(encoding="utf-8") == "keep me"


def test_output_help_mentions_force() -> None:
    for command in OUTPUT_COMMANDS:
        result = runner.invoke(app, [command, "--help"])

        assert "--force" in result.output, command


def test_check_output_allows_new_and_forced(tmp_path: Path) -> None:
    data = _write_lines(tmp_path / "past.jsonl", "a")
    existing = tmp_path / "old.yaml"
    existing.write_text("old", encoding="utf-8")

    check_output_path(tmp_path / "new" / "deeper" / "out.yaml", [("--data", data)], force=False)
    check_output_path(existing, [("--data", data)], force=True)

    assert (tmp_path / "new" / "deeper").is_dir()
    assert not list((tmp_path / "new" / "deeper").iterdir())


def test_check_output_rejects_special_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    for special in (fifo, Path("/dev/null")):
        with pytest.raises(typer.BadParameter, match="not a regular file"):
            check_output_path(special, [], force=True)


def test_check_output_rejects_inputs(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("thresholds: {}\n", encoding="utf-8")
    link = tmp_path / "hard-link.yaml"
    os.link(policy, link)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}", encoding="utf-8")

    cases = [(policy, "--policy"), (link, "--policy"), (bundle / "manifest.json", "--bundle"),
             (tmp_path / "." / "policy.yaml", "--policy")]
    for output, option in cases:
        with pytest.raises(typer.BadParameter, match=f"is the {option} input"):
            check_output_path(output, [("--policy", policy), ("--bundle", bundle)], force=True)


def test_check_output_names_user_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    output = blocker / "out.yaml"

    with pytest.raises(typer.BadParameter) as caught:
        check_output_path(output, [], force=False, option="--changes-out")

    assert str(output) in str(caught.value)
    assert ".partial" not in str(caught.value)
    assert caught.value.param_hint == "--changes-out"


def test_read_data_files_rejects_shared_ids(tmp_path: Path) -> None:
    first = _write_lines(tmp_path / "first.jsonl", "a", "b")
    second = _write_lines(tmp_path / "second.jsonl", "c", "b")

    with pytest.raises(SchemaError) as caught:
        read_data_files([first, second])

    message = str(caught.value)
    assert "'b'" in message
    assert str(first) in message
    assert str(second) in message


def test_read_data_files_rejects_repeated_file(tmp_path: Path) -> None:
    data = _write_lines(tmp_path / "ten.jsonl", "a")

    with pytest.raises(SchemaError, match="is given twice"):
        read_data_files([data, tmp_path / "." / "ten.jsonl"])


def test_read_data_files_joins_files(tmp_path: Path) -> None:
    first = _write_lines(tmp_path / "first.jsonl", "a")
    second = _write_lines(tmp_path / "second.jsonl", "b")

    conversations = read_data_files([first, second])

    assert [conversation.id for conversation in conversations] == ["a", "b"]


def test_tune_help_states_min_escalated() -> None:
    from pipelines.backtest.tune import MIN_ESCALATED

    result = runner.invoke(app, ["tune", "--help"])

    assert f"fewer than {MIN_ESCALATED} labelled" in _plain_output(result.output)
