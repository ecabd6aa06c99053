"""Tests of `escalation benchmark uss` on small real USS files and the small real bundle."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.conftest import REPOSITORY, TrainedBundle

runner = CliRunner()

USS_DIR = REPOSITORY / "data" / "raw" / "uss"
METRIC_KEYS = ("uar", "kappa", "rho", "f1_dissatisfied", "uar_all_levels",
               "rating_dissatisfied_roc_auc", "escalation_dissatisfied_roc_auc")


def _sample(tmp_path: Path, corpus: str, dialogues: int) -> Path:
    # The first dialogues of the real corpus, in the original USS format.
    blocks = gzip.open(USS_DIR / f"{corpus}.txt.gz", "rt", encoding="utf-8").read()
    sample = tmp_path / f"{corpus}.txt"
    sample.write_text("\n\n".join(blocks.split("\n\n")[:dialogues]) + "\n", encoding="utf-8")
    return sample


def _run(arguments: list[str], bundle: TrainedBundle, tmp_path: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["benchmark", "uss", *arguments, "--bundle", str(bundle.path),
                                 "--embedding-cache", str(tmp_path / "cache"),
                                 "--speed-dialogues", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return payload


def _check_metric_ranges(payload: dict[str, Any]) -> None:
    for key in METRIC_KEYS:
        assert key in payload, key
    assert 0.0 <= payload["uar"] <= 1.0
    assert 0.0 <= payload["uar_all_levels"] <= payload["uar"]
    assert -1.0 <= payload["kappa"] <= 1.0
    assert 0.0 <= payload["f1_dissatisfied"] <= 1.0
    assert 0.0 <= payload["rating_dissatisfied_roc_auc"] <= 1.0
    assert payload["details"]["scoring_messages_per_second"] > 0
    assert payload["details"]["scoring_messages"] > 0


def test_uss_cross_validation_reports_folds(trained_bundle: TrainedBundle,
                                            tmp_path: Path) -> None:
    data = _sample(tmp_path, "SGD", 50)

    payload = _run(["--data", str(data), "--folds", "2"], trained_bundle, tmp_path)

    _check_metric_ranges(payload)
    assert payload["benchmark"] == "uss-cv-sgd"
    assert payload["params"]["folds"] == 2
    assert payload["params"]["dialogues"] == 50
    folds = payload["details"]["folds"]
    assert len(folds) == 2
    assert sum(fold["n"] for fold in folds) == payload["params"]["turns"]
    assert payload["details"]["pooled"]["n"] == payload["params"]["turns"]
    for fold in folds:
        assert fold["rating_head"].startswith("C=")
        assert 0.0 <= fold["dissatisfied_threshold"] <= 1.0
    assert payload["mlflow_run_id"]


def test_uss_cross_domain_trains_on_other_file(trained_bundle: TrainedBundle,
                                               tmp_path: Path) -> None:
    train = _sample(tmp_path, "SGD", 50)
    test = _sample(tmp_path, "MWOZ", 20)

    payload = _run(["--train", str(train), "--test", str(test)], trained_bundle, tmp_path)

    _check_metric_ranges(payload)
    assert payload["benchmark"] == "uss-sgd-to-mwoz"
    assert payload["params"]["train"] == "SGD.txt"
    assert payload["details"]["all"]["n"] == payload["params"]["turns_test"]
    assert not math.isnan(payload["kappa"])


def test_uss_previous_turn_input_is_named(trained_bundle: TrainedBundle,
                                          tmp_path: Path) -> None:
    train = _sample(tmp_path, "SGD", 50)
    test = _sample(tmp_path, "MWOZ", 20)

    payload = _run(["--train", str(train), "--test", str(test), "--input", "previous"],
                   trained_bundle, tmp_path)

    _check_metric_ranges(payload)
    assert payload["benchmark"] == "uss-sgd-to-mwoz-previous-turn"
    assert payload["params"]["input"] == "previous customer turn"


@pytest.mark.parametrize("arguments", [
    [],
    ["--train", "a.txt"],
    ["--data", "a.txt", "--test", "b.txt"],
])
def test_uss_rejects_wrong_option_mix(arguments: list[str]) -> None:
    result = runner.invoke(app, ["benchmark", "uss", *arguments])

    assert result.exit_code == 2
    assert "--data" in result.output or "--train" in result.output


def test_uss_missing_file_is_named(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    missing = tmp_path / "absent.txt"

    result = runner.invoke(app, ["benchmark", "uss", "--data", str(missing), "--bundle",
                                 str(trained_bundle.path)])

    assert result.exit_code != 0
    assert "absent.txt" in str(result.exception) + result.output


def test_uss_paper_protocol_on_real_dialogues(trained_bundle: TrainedBundle,
                                              tmp_path: Path) -> None:
    # 200 real MultiWOZ dialogues (about 2,300 user turns) under the authors' 10 folds.
    data = _sample(tmp_path, "MWOZ", 200)

    payload = _run(["--data", str(data)], trained_bundle, tmp_path)

    folds = payload["details"]["folds"]
    assert len(folds) == 10
    # A constant prediction recalls one level of five, so it scores at most 0.2 here.
    assert payload["uar_all_levels"] > 0.2
    assert payload["f1_dissatisfied"] > 0.1
    assert payload["rating_dissatisfied_roc_auc"] > 0.6
    assert payload["kappa"] > 0.05
