"""Tests of `escalation benchmark frustration` on the small real bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.evaluate.vader import VaderBaseline
from serving.scorer import Scorer
from tests.conftest import TrainedBundle
from tests.pipelines.benchmark.test_frustration_data import COMMENTS, write_goemotions

runner = CliRunner()

TEXTS = [text for text, _, _ in COMMENTS]
LABELS = [1, 0, 1, 0, 1, 1]


@pytest.fixture(scope="module")
def frustration_payload(trained_bundle: TrainedBundle,
                        tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = write_goemotions(tmp_path_factory.mktemp("goemotions"))
    result = runner.invoke(app, ["benchmark", "frustration", "--data", str(path), "--bundle",
                                 str(trained_bundle.path), "--batch-size", "2", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_command_prints_named_keys(frustration_payload: dict) -> None:
    for key in ("roc_auc", "pr_auc", "messages_per_second", "messages_per_second_batched",
                "vader_roc_auc", "vader_pr_auc", "vader_messages_per_second"):
        assert key in frustration_payload, key

    assert frustration_payload["benchmark"] == "goemotions-frustration"
    assert frustration_payload["details"]["n"] == len(COMMENTS)
    assert frustration_payload["details"]["positive_rate"] == pytest.approx(4 / 6)


def test_model_scores_match_scorer(frustration_payload: dict,
                                   trained_bundle: TrainedBundle) -> None:
    scorer = Scorer(trained_bundle.path)
    scores = [scorer.message_signals([text])[0].frustration for text in TEXTS]

    assert frustration_payload["roc_auc"] == pytest.approx(roc_auc_score(LABELS, scores))
    assert frustration_payload["pr_auc"] == pytest.approx(average_precision_score(LABELS, scores))
    threshold = frustration_payload["details"]["model"]["threshold"]
    assert threshold == pytest.approx(scorer.manifest.thresholds.frustration)


def test_vader_scores_match_compound(frustration_payload: dict) -> None:
    scores = np.clip(-VaderBaseline().compound_scores(TEXTS), 0.0, 1.0)

    assert frustration_payload["vader_roc_auc"] == pytest.approx(roc_auc_score(LABELS, scores))
    assert frustration_payload["vader_pr_auc"] == pytest.approx(
        average_precision_score(LABELS, scores))


def test_speed_is_reported(frustration_payload: dict) -> None:
    speed = frustration_payload["details"]["speed"]

    assert speed["batched"]["batch_size"] == 2
    assert frustration_payload["messages_per_second"] > 0
    assert frustration_payload["vader_messages_per_second"] > 0


def test_jsonl_data_is_accepted(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    from serving.schema import parse_conversation, write_conversations

    conversation = parse_conversation({"id": "c1", "turns": [
        {"role": "customer", "text": text, "labels": {"frustration": bool(label)}}
        for text, label in zip(TEXTS, LABELS, strict=True)]})
    path = tmp_path / "heldout.jsonl"
    write_conversations([conversation], path)

    result = runner.invoke(app, ["benchmark", "frustration", "--data", str(path), "--bundle",
                                 str(trained_bundle.path), "--json"])

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["details"]["n"] == len(TEXTS)
