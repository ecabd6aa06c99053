"""Tests of the HTML report written for the small real bundle on a small labelled file."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np

from pipelines.evaluate.evaluation import evaluate_escalation, evaluate_messages
from pipelines.evaluate.vader import VaderBaseline
from serving.bundle import load_manifest
from serving.schema import SENTIMENT_CLASSES, Role
from serving.scorer import Scorer
from tests.conftest import TrainedBundle
from tests.pipelines.report.conftest import (
    HOSTILE_REASON,
    HOSTILE_SOURCE,
    labelled_conversations,
    parse_page,
)

SECTIONS = ("bundle", "data", "summary", "head-sentiment", "head-frustration",
            "head-escalation", "calibration", "thresholds", "lead-time", "by-source",
            "by-reason")


def _row(table: list[list[str]], first_cell: str) -> list[str]:
    matches = [row for row in table if row and row[0] == first_cell]
    assert matches, f"no row starting with {first_cell!r} in {table}"
    return matches[0]


def _label_settings(trained_bundle: TrainedBundle) -> tuple[int, int]:
    parameters = load_manifest(trained_bundle.path).parameters["escalation"]
    return int(parameters["horizon"]), int(parameters["dissatisfied_rating"])


def test_report_parses_with_every_section(report_page: tuple[Path, str]) -> None:
    path, html = report_page
    page = parse_page(html)

    assert path.is_file()
    assert page.problems == []
    for section in SECTIONS:
        assert section in page.ids, section


def test_report_loads_nothing_from_outside(report_page: tuple[Path, str]) -> None:
    _, html = report_page
    page = parse_page(html)

    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object")]
    for tag, attributes in page.tags:
        for name in ("src", "href"):
            value = attributes.get(name)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, name, value[:80])
    assert not re.search(r"https?://", html)
    assert "@import" not in html


def test_charts_are_svg_images(report_page: tuple[Path, str]) -> None:
    _, html = report_page
    page = parse_page(html)
    images = [attributes for tag, attributes in page.tags if tag == "img"]

    # Ranking curves of three heads, reliability, threshold sweep and lead-time histogram.
    assert len(images) == 6
    for attributes in images:
        source = str(attributes["src"])
        assert source.startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(source.split(",", 1)[1]).decode("utf-8")
        assert "<svg" in svg
        assert "<script" not in svg
        assert attributes.get("alt")


def test_data_markup_is_escaped(report_page: tuple[Path, str]) -> None:
    _, html = report_page
    page = parse_page(html)
    text = "".join(page.text)

    assert HOSTILE_SOURCE not in html
    assert HOSTILE_REASON not in html
    assert "&lt;b&gt;partner&lt;/b&gt; &amp; co" in html
    assert HOSTILE_SOURCE in text
    assert HOSTILE_REASON in text
    assert [tag for tag, _ in page.tags if tag == "b"] == []


def test_manifest_facts_are_listed(report_page: tuple[Path, str],
                                   trained_bundle: TrainedBundle) -> None:
    _, html = report_page
    facts = parse_page(html).tables["bundle-facts"]
    manifest = load_manifest(trained_bundle.path)

    assert _row(facts, "name")[1] == "escalation-test"
    assert _row(facts, "MLflow run id")[1] == trained_bundle.run_id
    assert _row(facts, "escalation threshold")[1] == f"{manifest.thresholds.escalation:.3f}"
    assert _row(facts, "prepare threshold")[1] == f"{manifest.thresholds.prepare:.3f}"
    assert _row(facts, "created")[1].startswith(manifest.created_at.strftime("%Y-%m-%dT%H:%M"))
    fingerprint = parse_page(html).tables["fingerprint"]
    for name, digest in manifest.training_data["files"].items():
        assert _row(fingerprint, name)[1] == digest


def test_escalation_confusion_matches_scorer(report_page: tuple[Path, str],
                                             trained_bundle: TrainedBundle) -> None:
    _, html = report_page
    horizon, dissatisfied_rating = _label_settings(trained_bundle)
    scorer = Scorer(trained_bundle.path)
    counts = {"tn": 0, "fp": 0, "fn": 0, "tp": 0}
    for conversation in labelled_conversations():
        ratings = [turn.labels.satisfaction for turn in conversation.turns
                   if turn.role is Role.CUSTOMER and turn.labels is not None]
        dissatisfied = [rating is not None and rating <= dissatisfied_rating
                        for rating in ratings]
        for position, turn in enumerate(scorer.score(conversation).turns):
            positive = any(dissatisfied[position:position + horizon + 1])
            alert = turn.escalation_probability >= scorer.thresholds.escalation
            if alert and positive:
                counts["tp"] += 1
            elif alert:
                counts["fp"] += 1
            elif positive:
                counts["fn"] += 1
            else:
                counts["tn"] += 1

    matrix = parse_page(html).tables["confusion-escalation-1"]

    assert _row(matrix, "no escalation")[1:] == [str(counts["tn"]), str(counts["fp"])]
    assert _row(matrix, "escalation")[1:] == [str(counts["fn"]), str(counts["tp"])]


def test_sentiment_confusion_matches_scorer(report_page: tuple[Path, str],
                                            trained_bundle: TrainedBundle) -> None:
    _, html = report_page
    scorer = Scorer(trained_bundle.path)
    names = [label.value for label in SENTIMENT_CLASSES]
    turns = [turn for conversation in labelled_conversations() for turn in conversation.turns
             if turn.role is Role.CUSTOMER]
    signals = scorer.message_signals([turn.text for turn in turns])
    expected = np.zeros((3, 3), dtype=int)
    for turn, signal in zip(turns, signals, strict=True):
        assert turn.labels is not None and turn.labels.sentiment is not None
        expected[names.index(turn.labels.sentiment.value), int(np.argmax(signal.sentiment))] += 1

    matrix = parse_page(html).tables["confusion-sentiment-1"]

    for index, name in enumerate(names):
        assert _row(matrix, name)[1:] == [str(count) for count in expected[index]], name


def test_summary_agrees_with_evaluate(report_page: tuple[Path, str],
                                      trained_bundle: TrainedBundle) -> None:
    _, html = report_page
    horizon, dissatisfied_rating = _label_settings(trained_bundle)
    scorer = Scorer(trained_bundle.path)
    conversations = labelled_conversations()
    messages = evaluate_messages(conversations, scorer, VaderBaseline())
    escalation = evaluate_escalation(conversations, scorer, horizon=horizon,
                                     dissatisfied_rating=dissatisfied_rating)
    page = parse_page(html)
    header = page.tables["summary-escalation"][0]

    for name, label in (("model", "model"), ("rules", "rules alone (baseline)")):
        row = _row(page.tables["summary-escalation"], label)
        for column in ("roc auc", "pr auc", "precision", "recall", "f1"):
            value = escalation[name][column.replace(" ", "_")]
            assert row[header.index(column)] == f"{value:.3f}", (name, column)
    frustration = _row(page.tables["summary-frustration"], "VADER (baseline)")
    frustration_header = page.tables["summary-frustration"][0]
    assert frustration[frustration_header.index("f1")] == \
        f"{messages['frustration']['vader']['f1']:.3f}"
    sentiment = _row(page.tables["summary-sentiment"], "model")
    assert sentiment[page.tables["summary-sentiment"][0].index("macro f1")] == \
        f"{messages['sentiment']['model']['macro_f1']:.3f}"


def test_threshold_table_marks_bundle_thresholds(report_page: tuple[Path, str],
                                                 trained_bundle: TrainedBundle) -> None:
    _, html = report_page
    table = parse_page(html).tables["threshold-table"]
    thresholds = load_manifest(trained_bundle.path).thresholds
    marked = {name: row[0] for row in table[1:] for name in row[1].split(", ") if name}

    assert marked == {"escalation": f"{thresholds.escalation:.3f}",
                      "prepare": f"{thresholds.prepare:.3f}"}
    assert len(table) >= 1 + 19


def test_groups_per_source_and_reason(report_page: tuple[Path, str]) -> None:
    _, html = report_page
    page = parse_page(html)
    by_source = page.tables["escalation-by-source"]
    by_reason = page.tables["escalation-by-labelled-reason"]
    # The first row of a group carries the group cells; the rules row below it does not.
    sources = {row[0] for row in by_source[1:] if len(row) == len(by_source[0])}
    reasons = {row[0] for row in by_reason[1:] if len(row) == len(by_reason[0])}
    counts = {row[0]: row[1] for row in page.tables["data-sources"][1:]}

    assert sources == {"shop-web", HOSTILE_SOURCE, "(no source)"}
    assert reasons == {"billing", "technical", HOSTILE_REASON, "(not labelled)"}
    assert counts["shop-web"] == "9"
