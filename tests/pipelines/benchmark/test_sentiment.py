"""Tests of `escalation benchmark sentiment` and its speed measurement on the small real bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score
from typer.testing import CliRunner

from pipelines.benchmark.speed import (
    batched_signals_function,
    measure_product,
    time_in_batches,
)
from pipelines.cli import app, main
from pipelines.datasets.paths import SHARED_DATASETS_ENV
from pipelines.evaluate.vader import VaderBaseline
from serving.scorer import Scorer
from tests.conftest import TrainedBundle
from tests.pipelines.benchmark.test_sentiment_data import write_split

runner = CliRunner()

# Six clear messages per class, so every class is present in the labels and the predictions.
MESSAGES = [
    ("This is the worst support I have ever had", 0),
    ("I am so angry, nothing works", 0),
    ("Terrible app, it crashed again and lost my data", 0),
    ("I hate waiting two weeks for a refund", 0),
    ("Awful experience, never again", 0),
    ("You people are useless", 0),
    ("The meeting is at 3pm on Tuesday", 1),
    ("My order number is 4471", 1),
    ("The store opens at nine", 1),
    ("I changed my address last week", 1),
    ("Which plan includes the API?", 1),
    ("The package was sent on Monday", 1),
    ("Thank you so much, this is wonderful", 2),
    ("I love the new update, great job", 2),
    ("Amazing service, very happy", 2),
    ("Great news, thanks for the quick help", 2),
    ("This is excellent, I am delighted", 2),
    ("Best purchase I made this year", 2),
]
TEXTS = [text for text, _ in MESSAGES]
LABELS = [label for _, label in MESSAGES]


def run_benchmark(arguments: list[str]) -> dict:
    result = runner.invoke(app, ["benchmark", "sentiment", *arguments, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sentiment_payload(trained_bundle: TrainedBundle,
                      tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = write_split(tmp_path_factory.mktemp("tweeteval"), TEXTS,
                       [str(label) for label in LABELS])
    return run_benchmark(["--data", str(path), "--bundle", str(trained_bundle.path),
                          "--batch-size", "4"])


def test_command_prints_named_keys(sentiment_payload: dict) -> None:
    for key in ("macro_f1", "macro_recall", "messages_per_second", "messages_per_second_batched",
                "vader_macro_f1", "vader_macro_recall", "vader_messages_per_second"):
        assert key in sentiment_payload, key

    assert sentiment_payload["benchmark"] == "tweeteval-sentiment"
    assert sentiment_payload["details"]["n"] == len(MESSAGES)
    assert sentiment_payload["params"]["batch_size"] == 4


def test_model_scores_match_scorer(sentiment_payload: dict,
                                   trained_bundle: TrainedBundle) -> None:
    # The trailing space is part of each line, as in the TweetEval files.
    scorer = Scorer(trained_bundle.path)
    predicted = [int(np.argmax(scorer.message_signals([f"{text} "])[0].sentiment))
                 for text in TEXTS]

    expected_f1 = f1_score(LABELS, predicted, labels=[0, 1, 2], average="macro",
                           zero_division=np.nan)
    expected_recall = recall_score(LABELS, predicted, labels=[0, 1, 2], average="macro",
                                   zero_division=np.nan)
    assert sentiment_payload["macro_f1"] == pytest.approx(expected_f1)
    assert sentiment_payload["macro_recall"] == pytest.approx(expected_recall)


def test_vader_scores_match_rule(sentiment_payload: dict) -> None:
    index = {"negative": 0, "neutral": 1, "positive": 2}
    predicted = [index[label] for label in
                 VaderBaseline().sentiment_label([f"{text} " for text in TEXTS])]

    expected = f1_score(LABELS, predicted, labels=[0, 1, 2], average="macro",
                        zero_division=np.nan)
    assert sentiment_payload["vader_macro_f1"] == pytest.approx(expected)


def test_speed_figures_are_consistent(sentiment_payload: dict) -> None:
    speed = sentiment_payload["details"]["speed"]

    assert speed["single"]["messages"] == len(MESSAGES)
    assert speed["single"]["batch_size"] == 1
    assert speed["batched"]["batch_size"] == 4
    for name in ("single", "batched", "vader"):
        assert speed[name]["seconds"] > 0, name
        assert speed[name]["messages_per_second"] == pytest.approx(
            len(MESSAGES) / speed[name]["seconds"]), name
    assert sentiment_payload["messages_per_second"] == speed["single"]["messages_per_second"]


def test_details_state_mapping_and_machine(sentiment_payload: dict) -> None:
    details = sentiment_payload["details"]

    assert details["class_mapping"] == {"negative": "negative", "neutral": "neutral",
                                        "positive": "positive"}
    assert details["label_counts"] == {"negative": 6, "neutral": 6, "positive": 6}
    assert sum(map(sum, details["confusion_model"])) == len(MESSAGES)
    assert details["machine"]["logical_cpus"] >= 1
    assert details["published"]["macro_f1_test"] == pytest.approx(0.7242)


def test_missing_default_data_exits_with_path(trained_bundle: TrainedBundle, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(SHARED_DATASETS_ENV, str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["escalation", "benchmark", "sentiment", "--bundle",
                                      str(trained_bundle.path)])

    with pytest.raises(SystemExit) as exited:
        main()

    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "tweeteval" / "sentiment" / "val_text.txt") in error
    assert "--data" in error


def test_time_in_batches_keeps_order() -> None:
    calls: list[list[str]] = []

    def upper(texts: list[str]) -> list[str]:
        calls.append(texts)
        return [text.upper() for text in texts]

    results, throughput = time_in_batches(upper, ["a", "b", "c", "d", "e"], 2)

    assert results == ["A", "B", "C", "D", "E"]
    # The first call is the untimed warm-up on the first text.
    assert calls == [["a"], ["a", "b"], ["c", "d"], ["e"]]
    assert throughput.messages == 5
    assert throughput.batch_size == 2


def test_time_in_batches_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="batch_size 0"):
        time_in_batches(lambda texts: texts, ["a"], 0)
    with pytest.raises(RuntimeError, match="one per text"):
        time_in_batches(lambda texts: [], ["a", "b"], 2)


def test_empty_pass_has_undefined_rate() -> None:
    results, throughput = time_in_batches(lambda texts: texts, [], 3)

    assert results == []
    assert np.isnan(throughput.messages_per_second)


def test_batched_path_matches_single_path(trained_bundle: TrainedBundle) -> None:
    scorer = Scorer(trained_bundle.path)
    texts = TEXTS[:6]

    run = measure_product(scorer, texts, 3)
    batched_path = batched_signals_function(scorer, 3)
    # The same slices as the timed pass, because an int8 embedding depends on its batch.
    batched = batched_path(texts[:3]) + batched_path(texts[3:])

    assert run.sentiment.shape == (6, 3)
    assert run.batched_sentiment.shape == (6, 3)
    assert np.allclose(run.sentiment.sum(axis=1), 1.0, atol=1e-4)
    # int8 activation scales depend on the batch, so the two paths agree only closely.
    assert np.allclose(run.batched_sentiment, run.sentiment, atol=0.1)
    assert np.allclose([signal.frustration for signal in batched], run.batched_frustration)
