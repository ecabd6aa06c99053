"""Tests of pipelines.analysis.turn_scores with the session's real bundle and USS conversations."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.analysis.labelled_splits import uss_split
from pipelines.analysis.turn_scores import (
    TURN_SCORE_COLUMNS,
    LabelSettings,
    alert_source,
    decision_evidence,
    label_settings,
    score_turns,
)
from pipelines.train.config import load_train_config
from pipelines.train.labels import escalation_labels
from serving.decision import DecisionThresholds, decide
from serving.rules import RuleMatch
from serving.schema import Conversation, parse_conversation
from serving.scorer import Scorer
from serving.tiers import Reason, Tier
from tests.conftest import TrainedBundle

THRESHOLDS = DecisionThresholds(escalation=0.6, prepare=0.3)


@pytest.fixture(scope="module")
def scorer(trained_bundle: TrainedBundle) -> Scorer:
    return Scorer(trained_bundle.path)


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    human = parse_conversation({"id": "asks-for-human", "source": "hand", "turns": [
        {"role": "customer", "text": "My order never arrived.", "labels": {"satisfaction": 3}},
        {"role": "assistant", "text": "Sorry to hear that, let me check."},
        {"role": "customer", "text": "I want to talk to a human agent right now.",
         "labels": {"satisfaction": 2}},
    ]})
    return [*uss_split("test", sample=4), human]


@pytest.fixture(scope="module")
def scored(scorer: Scorer, conversations: list[Conversation]) -> pd.DataFrame:
    return score_turns(conversations, scorer, LabelSettings(horizon=2, dissatisfied_rating=2))


def test_score_turns_one_row_per_customer_turn(
    scored: pd.DataFrame, conversations: list[Conversation]
) -> None:
    expected = sum(len(conversation.customer_turn_indices()) for conversation in conversations)
    assert len(scored) == expected
    assert list(scored.columns) == TURN_SCORE_COLUMNS


def test_score_turns_matches_scorer(
    scored: pd.DataFrame, scorer: Scorer, conversations: list[Conversation]
) -> None:
    for conversation in conversations:
        score = scorer.score(conversation)
        rows = scored[scored["conversation_id"] == conversation.id]
        assert rows["turn_index"].tolist() == [turn.turn_index for turn in score.turns]
        assert rows["probability"].tolist() == pytest.approx(
            [turn.escalation_probability for turn in score.turns])
        assert rows["tier"].tolist() == [turn.decision.tier.value for turn in score.turns]


def test_score_turns_labels_as_training(
    scored: pd.DataFrame, conversations: list[Conversation]
) -> None:
    for conversation in conversations:
        rows = scored[scored["conversation_id"] == conversation.id]
        assert rows["label"].tolist() == escalation_labels(conversation, horizon=2,
                                                           dissatisfied_rating=2)


def test_score_turns_alert_columns_agree(scored: pd.DataFrame) -> None:
    assert (scored["model_alert"] == (scored["probability"] >= scored["threshold"])).all()
    assert (scored["escalate"] == (scored["model_alert"] | scored["rule_alert"])).all()
    quiet = scored[~scored["escalate"]]
    assert (quiet["alert_source"] == "none").all()
    assert quiet["evidence"].str.contains(" < escalation threshold ").all()


def test_score_turns_rule_evidence(scored: pd.DataFrame) -> None:
    row = scored[scored["conversation_id"] == "asks-for-human"].iloc[-1]
    assert row["rule_alert"]
    assert "human_request" in row["rules_at_turn"]
    assert "rule human_request at conversation turn 2" in row["evidence"]
    assert row["satisfaction"] == 2
    assert row["dissatisfied"]
    assert row["position"] == "late"


def test_score_turns_reports_progress(scorer: Scorer,
                                      conversations: list[Conversation]) -> None:
    calls: list[tuple[int, int]] = []
    score_turns(conversations[:2], scorer, LabelSettings(2, 2),
                progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_label_settings_from_manifest(scorer: Scorer) -> None:
    config = load_train_config().escalation
    assert label_settings(scorer.manifest) == LabelSettings(config.horizon,
                                                            config.dissatisfied_rating)


def test_label_settings_manifest_override(scorer: Scorer) -> None:
    manifest = scorer.manifest.model_copy(update={"parameters": {
        "escalation": {"horizon": 5, "dissatisfied_rating": 1}}})
    assert label_settings(manifest) == LabelSettings(5, 1)


def test_label_settings_fallback_to_config(scorer: Scorer) -> None:
    manifest = scorer.manifest.model_copy(update={"parameters": {}})
    config = load_train_config().escalation
    assert label_settings(manifest) == LabelSettings(config.horizon,
                                                     config.dissatisfied_rating)


def test_decision_evidence_lists_rule_then_model() -> None:
    match = RuleMatch(rule="billing_dispute", tier=Tier.SCHEDULED, reason=Reason.BILLING,
                      turn_index=4, description="billing", matched_text="charged twice",
                      span=(2, 15), values={"hits": 1})
    evidence = decision_evidence(decide(0.75, 4, [match], THRESHOLDS))
    assert evidence == ("model 0.750 >= 0.600 [rapid]; rule billing_dispute at conversation "
                        "turn 4 ('charged twice', hits=1) [scheduled]")


def test_decision_evidence_without_reason() -> None:
    evidence = decision_evidence(decide(0.45, 1, [], THRESHOLDS))
    assert evidence == "probability 0.450 < escalation threshold 0.600 (prepare 0.300)"


@pytest.mark.parametrize(("model", "rule", "expected"), [
    (True, True, "model+rule"), (True, False, "model"), (False, True, "rule"),
    (False, False, "none"),
])
def test_alert_source_names(model: bool, rule: bool, expected: str) -> None:
    assert alert_source(model, rule) == expected


def test_decision_evidence_cuts_long_values() -> None:
    match = RuleMatch(rule="human_request", tier=Tier.RAPID, reason=None, turn_index=2,
                      description="asks for a human", matched_text="talk to a human",
                      values={"keyword": "talk|speak " * 20, "hits": 1})
    evidence = decision_evidence(decide(0.1, 2, [match], THRESHOLDS))
    keyword = evidence.split("keyword=")[1].split(",")[0]
    assert len(keyword) == 40
    assert keyword.endswith("…")
