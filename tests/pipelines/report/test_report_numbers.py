"""Tests of the report's number functions on hand-built rows, with results worked out by hand."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from pipelines.evaluate.metrics import expected_calibration_error
from pipelines.report.curves import (
    SWEEP_THRESHOLDS,
    binary_confusion,
    operating_point,
    reliability_curve,
    threshold_sweep,
)
from pipelines.report.data import ConversationRows
from pipelines.report.html import format_number
from pipelines.report.summary import (
    alerts_by_reason,
    conversation_alert_rate,
    escalation_by_group,
)
from pipelines.report.writer import check_writable
from serving.errors import ReportError


def _rows(
    name: str,
    model: list[float],
    dissatisfied: list[bool],
    *,
    rules: list[float] | None = None,
    reasons: list[str | None] | None = None,
    source: str = "web",
    horizon: int = 1,
) -> ConversationRows:
    flags = np.asarray(dissatisfied, dtype=bool)
    labels = np.asarray([int(flags[index:index + horizon + 1].any())
                         for index in range(flags.size)])
    categories: list[str | None] = list(reasons) if reasons is not None else [None] * len(model)
    return ConversationRows(
        conversation_id=name,
        source=source,
        labelled_reason=None,
        labels=labels,
        dissatisfied=flags,
        model=np.asarray(model, dtype=float),
        rules=np.asarray(rules if rules is not None else [0.0] * len(model), dtype=float),
        escalate=np.asarray([category is not None for category in categories], dtype=bool),
        reason_categories=categories,
    )


CAUGHT = _rows("caught", [0.1, 0.6, 0.7], [False, False, True],
               reasons=[None, "billing", "billing"])
FALSE_ALARM = _rows("false-alarm", [0.9, 0.2], [False, False], reasons=["general", None],
                    source="app")
MISSED = _rows("missed", [0.2, 0.3], [True, False], rules=[0.0, 1.0],
               reasons=[None, "urgent"], source="app")


def test_reliability_gaps_average_to_ece() -> None:
    generator = np.random.default_rng(7)
    probability = generator.random(500)
    outcome = (generator.random(500) < probability ** 2).astype(int)

    curve = reliability_curve("model", outcome, probability)
    weighted_gap = np.sum(curve.counts * np.abs(curve.observed_rate - curve.mean_probability))

    assert curve.counts.sum() == 500
    assert weighted_gap / 500 == pytest.approx(expected_calibration_error(outcome, probability))


def test_reliability_puts_one_in_last_bin() -> None:
    curve = reliability_curve("model", np.asarray([1, 0]), np.asarray([1.0, 0.0]), n_bins=4)

    assert list(curve.counts) == [1, 1]
    assert list(curve.mean_probability) == [0.0, 1.0]


def test_alerts_by_reason_counts_first_alerts() -> None:
    table = alerts_by_reason([CAUGHT, FALSE_ALARM, MISSED], escalation=0.5)
    rows = {(row["system"], row["reason"]): row for row in table}

    assert set(rows) == {("model", "billing"), ("model", "general"), ("rules", "urgent"),
                         ("decision", "billing"), ("decision", "general"),
                         ("decision", "urgent")}
    billing = rows[("model", "billing")]
    assert (billing["alerted"], billing["dissatisfied"], billing["in_time"]) == (1, 1, 1)
    assert billing["mean_lead_turns"] == 1.0
    assert rows[("model", "general")]["precision"] == 0.0
    late = rows[("rules", "urgent")]
    assert (late["alerted"], late["dissatisfied"], late["in_time"]) == (1, 1, 0)
    assert math.isnan(late["mean_lead_turns"])
    assert [row["system"] for row in table][:2] == ["model", "model"]


def test_conversation_alert_rate_counts_any_turn() -> None:
    conversations = [CAUGHT, FALSE_ALARM, MISSED]

    assert conversation_alert_rate(conversations, lambda rows: rows.model, 0.5) == \
        pytest.approx(2 / 3)
    assert conversation_alert_rate(conversations, lambda rows: rows.model, 0.95) == 0.0
    assert math.isnan(conversation_alert_rate([], lambda rows: rows.model, 0.5))


def test_threshold_sweep_marks_and_rates() -> None:
    # Thresholds off the 0.05 grid, so they add rows of their own.
    table = threshold_sweep([CAUGHT, FALSE_ALARM, MISSED], {"escalation": 0.66,
                                                            "prepare": 0.27})
    by_threshold = {row["threshold"]: row for row in table}

    assert len(table) == len(SWEEP_THRESHOLDS) + 2
    assert by_threshold[0.66]["marks"] == ["escalation"]
    assert by_threshold[0.27]["marks"] == ["prepare"]
    assert by_threshold[0.5]["marks"] == []
    # At 0.66 only CAUGHT's last turn and FALSE_ALARM's first turn alert.
    assert by_threshold[0.66]["alert_rate_conversations"] == pytest.approx(2 / 3)
    assert by_threshold[0.66]["catch_rate"] == 0.5
    assert by_threshold[0.66]["mean_lead_turns"] == 0.0
    assert by_threshold[0.66]["false_alarm_rate"] == 1.0
    # Positive turns: CAUGHT 1 and 2 (horizon 1), MISSED 0; of 2 alerts one is positive.
    assert by_threshold[0.66]["precision"] == 0.5
    assert by_threshold[0.66]["recall"] == pytest.approx(1 / 3)


def test_escalation_by_group_splits_sources() -> None:
    table = escalation_by_group([CAUGHT, FALSE_ALARM, MISSED], lambda rows: rows.source, 0.5)
    groups = {row["group"]: row for row in table}

    assert [row["group"] for row in table] == ["app", "web"]
    assert groups["app"]["n_conversations"] == 2
    assert groups["app"]["n_turns"] == 4
    assert groups["web"]["model"]["catch_rate"] == 1.0
    assert groups["app"]["model"]["catch_rate"] == 0.0
    assert groups["app"]["model"]["false_alarm_rate"] == 1.0


def test_binary_confusion_and_operating_point_agree() -> None:
    labels = np.asarray([0, 0, 1, 1, 1])
    scores = np.asarray([0.1, 0.7, 0.4, 0.8, 0.9])

    matrix = binary_confusion("model", labels, scores, 0.5, ["no", "yes"])
    point = operating_point("model", labels, scores, 0.5)

    assert matrix.counts.tolist() == [[1, 1], [1, 2]]
    assert point.recall == pytest.approx(2 / 3)
    assert point.precision == pytest.approx(2 / 3)
    assert point.false_positive_rate == 0.5


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (float("nan"), "nan"), (1234, "1,234"), (np.int64(5), "5"),
    (0.12345, "0.123"), (np.float32(0.5), "0.500"), (True, "True"), ("shop", "shop"),
])
def test_format_number(value: object, text: str) -> None:
    assert format_number(value) == text


def test_check_writable_rejects_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="it is a folder"):
        check_writable(tmp_path)


def test_check_writable_rejects_file_parent(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")

    with pytest.raises(ReportError, match=re.escape(f"{blocker} is a file")):
        check_writable(blocker / "out.html")


def test_check_writable_leaves_no_probe(tmp_path: Path) -> None:
    out = tmp_path / "new" / "report.html"

    check_writable(out)

    assert out.parent.is_dir()
    assert list(out.parent.iterdir()) == []
