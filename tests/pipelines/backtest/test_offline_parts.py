"""Tests of the backtest parts that need no model: labels, sweep, metrics, tuning, policy file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines.backtest.gold import GoldOutcome, gold_outcome
from pipelines.backtest.metrics import (
    agent_load,
    conversation_quality,
    gt_t_scores,
    handoff_timing,
)
from pipelines.backtest.policy_file import format_threshold, tuned_policy_text
from pipelines.backtest.replay import ConversationReplay, EscalationEvent, TurnRecord
from pipelines.backtest.sweep import threshold_curve
from pipelines.backtest.tune import (
    MIN_ESCALATED,
    Target,
    check_support,
    choose_escalation,
    choose_prepare,
    short_cut,
)
from serving.errors import PolicyError
from serving.rules import DEFAULT_POLICY_PATH, load_policy
from serving.schema import Conversation, parse_conversation
from serving.tiers import Tier


def _conversation(turns: list[dict[str, object]], labels: dict[str, object] | None = None,
                  conversation_id: str = "c1") -> Conversation:
    data: dict[str, object] = {"id": conversation_id, "turns": turns}
    if labels is not None:
        data["labels"] = labels
    return parse_conversation(data)


def _customer(text: str = "hello", **labels: object) -> dict[str, object]:
    turn: dict[str, object] = {"role": "customer", "text": text}
    if labels:
        turn["labels"] = labels
    return turn


def _assistant(text: str = "ok") -> dict[str, object]:
    return {"role": "assistant", "text": text}


def _replay(conversation_id: str, probabilities: list[float], *, rule_from: int | None = None,
            handoffs: tuple[int, ...] = (), team: str = "general",
            tier: Tier = Tier.RAPID) -> ConversationReplay:
    turns = tuple(
        TurnRecord(turn_index=index, role="customer", probability=probability,
                   tier=tier if handoffs and index >= handoffs[0] else Tier.NONE,
                   escalate=bool(handoffs) and index >= handoffs[0], prepare_agent=False,
                   newly_escalated=index in handoffs,
                   rule_tier=Tier.RAPID if rule_from is not None and index >= rule_from
                   else Tier.NONE, timestamp=None)
        for index, probability in enumerate(probabilities))
    events = tuple(EscalationEvent(index, tier, "general", False, team, "skill")
                   for index in handoffs)
    return ConversationReplay(conversation_id, turns, events)


def _gold(escalated: bool, window: tuple[int, int] | None = None) -> GoldOutcome:
    positions = tuple(range(window[0], window[1] + 1)) if window else ()
    return GoldOutcome(escalated, "conversation", window, positions, {})


# ----------------------------------------------------------------------------- gold labels


def test_gold_conversation_labels() -> None:
    conversation = _conversation([_customer(), _assistant(), _customer()],
                                 {"escalated": True, "escalation_turn": 2})

    gold = gold_outcome(conversation, horizon=2, dissatisfied_rating=2)

    assert gold is not None
    assert gold.escalated is True
    assert gold.source == "conversation"
    assert gold.window == (2, 2)
    assert gold.positions == (2,)


def test_gold_handoff_turn_labels() -> None:
    conversation = _conversation([_customer(handoff=False), _assistant(),
                                  _customer(handoff=True), _customer(handoff=True)])

    gold = gold_outcome(conversation, horizon=2, dissatisfied_rating=2)

    assert gold is not None
    assert gold.source == "handoff"
    assert gold.window == (2, 2)
    assert gold.positions == (2, 3)
    assert gold.turn_labels == {0: False, 2: True, 3: True}


def test_gold_satisfaction_window_spans_horizon() -> None:
    turns = [_customer(satisfaction=3), _assistant(), _customer(satisfaction=3), _assistant(),
             _customer(satisfaction=3), _assistant(), _customer(satisfaction=1)]
    conversation = _conversation(turns)

    gold = gold_outcome(conversation, horizon=2, dissatisfied_rating=2)

    assert gold is not None
    assert gold.escalated is True
    assert gold.source == "satisfaction"
    # Customer turns sit at 0, 2, 4, 6; the rating of 1 is at turn 6, two customer turns
    # of warning reach back to turn 2.
    assert gold.window == (2, 6)
    assert gold.turn_labels == {0: False, 2: True, 4: True, 6: True}


def test_gold_satisfied_conversation_is_negative() -> None:
    conversation = _conversation([_customer(satisfaction=4), _assistant(),
                                  _customer(satisfaction=3)])

    gold = gold_outcome(conversation, horizon=2, dissatisfied_rating=2)

    assert gold is not None
    assert gold.escalated is False
    assert gold.window is None
    assert gold.positions == ()


def test_gold_unlabelled_is_none() -> None:
    conversation = _conversation([_customer(), _assistant()])

    assert gold_outcome(conversation, horizon=2, dissatisfied_rating=2) is None


def test_gold_contradictory_labels_raise() -> None:
    conversation = _conversation([_customer(), _assistant()],
                                 {"escalated": False, "escalation_turn": 1})

    with pytest.raises(ValueError, match="labels.escalated is false but"):
        gold_outcome(conversation, horizon=2, dissatisfied_rating=2)


# ----------------------------------------------------------------------------- sweep and tuning


def _sweep_fixture() -> tuple[list[ConversationReplay], list[GoldOutcome | None]]:
    replays = [
        _replay("rule-positive", [0.1, 0.2], rule_from=1),
        _replay("high-positive", [0.3, 0.9]),
        _replay("mid-negative", [0.6, 0.5]),
        _replay("mid-positive", [0.4, 0.7]),
        _replay("low-negative", [0.1, 0.2]),
        _replay("unlabelled", [0.95]),
    ]
    golds: list[GoldOutcome | None] = [_gold(True), _gold(True), _gold(False), _gold(True),
                                       _gold(False), None]
    return replays, golds


def test_threshold_curve_counts_by_peak() -> None:
    curve = threshold_curve(*_sweep_fixture())

    # Peaks of the conversations no rule escalates: 0.9, 0.6, 0.7, 0.2, 0.95, plus 1.0.
    np.testing.assert_allclose(curve.thresholds, [0.2, 0.6, 0.7, 0.9, 0.95, 1.0])
    np.testing.assert_allclose(curve.rate, [6 / 6, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    # Labelled and escalated at 0.7: rule-positive, high-positive, mid-positive.
    assert curve.precision[2] == pytest.approx(3 / 3)
    assert curve.recall[2] == pytest.approx(3 / 3)
    # At 0.6 mid-negative joins them.
    assert curve.precision[1] == pytest.approx(3 / 4)
    # At 0.9 only the rule and high-positive remain.
    assert curve.recall[3] == pytest.approx(2 / 3)
    assert (curve.conversations, curve.labelled, curve.positives) == (6, 5, 3)


def test_choose_max_rate_picks_lowest_threshold() -> None:
    curve = threshold_curve(*_sweep_fixture())

    choice = choose_escalation(curve, Target("max_escalation_rate", 0.5))

    # The rate first drops to 3/6 at the 0.9 peak, and any threshold in (0.7, 0.9] gives it.
    assert 0.7 < choice.threshold <= 0.9
    assert choice.rate == pytest.approx(0.5)
    assert choice.recall == pytest.approx(2 / 3)


def test_choose_min_precision_maximises_recall() -> None:
    curve = threshold_curve(*_sweep_fixture())

    choice = choose_escalation(curve, Target("min_precision", 0.9))

    assert 0.6 < choice.threshold <= 0.7
    assert choice.precision == pytest.approx(1.0)
    assert choice.recall == pytest.approx(1.0)


def test_choose_prepare_stays_at_or_below_escalation() -> None:
    curve = threshold_curve(*_sweep_fixture())
    escalation = choose_escalation(curve, Target("max_escalation_rate", 1 / 6 + 1e-9))

    prepare = choose_prepare(curve, escalation, 0.9)

    assert prepare.threshold <= escalation.threshold
    assert prepare.recall is not None and prepare.recall >= 0.9
    assert 0.6 < prepare.threshold <= 0.7


def test_unreachable_rate_names_best_value() -> None:
    replays = [_replay("rule", [0.1], rule_from=0), _replay("other", [0.2])]
    curve = threshold_curve(replays, [_gold(True), _gold(False)])

    with pytest.raises(ValueError, match=r"lowest rate any threshold reaches is 0\.5000"):
        choose_escalation(curve, Target("max_escalation_rate", 0.3))


def test_unreachable_precision_names_best_value() -> None:
    replays = [_replay("a", [0.9]), _replay("b", [0.8]), _replay("c", [0.1])]
    curve = threshold_curve(replays, [_gold(False), _gold(True), _gold(False)])

    with pytest.raises(ValueError, match=r"highest precision any threshold reaches is 0\.5000"):
        choose_escalation(curve, Target("min_precision", 0.9))


def test_tuning_without_labels_raises() -> None:
    curve = threshold_curve([_replay("a", [0.3])], [None])

    with pytest.raises(ValueError, match="carries no escalation labels"):
        choose_escalation(curve, Target("max_escalation_rate", 0.5))


def test_target_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match=r"--max-escalation-rate 1.5 is invalid"):
        Target("max_escalation_rate", 1.5)


def test_target_error_names_option() -> None:
    with pytest.raises(ValueError, match=r"^--min-precision -0.2 is invalid"):
        Target("min_precision", -0.2)


def test_threshold_above_every_peak_rejected() -> None:
    # Only the negative conversation reaches 0.5, so a 1-in-10 rate cap pushes the threshold
    # above every probability: nothing that needed a human is found.
    replays = [_replay(f"c{index}", [0.1 + index / 100]) for index in range(9)]
    replays.append(_replay("top", [0.5]))
    golds = [_gold(True) for _ in range(9)] + [_gold(False)]
    curve = threshold_curve(replays, golds)
    choice = choose_escalation(curve, Target("max_escalation_rate", 0.01))

    with pytest.raises(ValueError, match="recall 0") as caught:
        check_support(curve, choice, Target("max_escalation_rate", 0.01))
    message = str(caught.value)
    assert "none of the 9 conversations that needed a human" in message
    assert "above every model probability" in message
    assert "--allow-weak-threshold" in message


def test_few_escalated_conversations_rejected() -> None:
    curve = threshold_curve(*_sweep_fixture())
    target = Target("min_precision", 0.9)
    choice = choose_escalation(curve, target)

    # Three labelled conversations escalate at the chosen threshold, fewer than the minimum.
    with pytest.raises(ValueError, match=f"only 3 of 5 labelled conversations, fewer than "
                       f"{MIN_ESCALATED}"):
        check_support(curve, choice, target)


def test_enough_escalated_conversations_pass() -> None:
    replays = [_replay(f"c{index}", [0.5 + index / 100]) for index in range(12)]
    golds = [_gold(index % 2 == 0) for index in range(12)]
    curve = threshold_curve(replays, golds)
    target = Target("max_escalation_rate", 0.5)
    choice = choose_escalation(curve, target)

    check_support(curve, choice, target)

    assert choice.rate == pytest.approx(0.5)


def test_short_cut_stays_in_interval() -> None:
    assert short_cut(0.41, 0.47) == 0.44
    value = short_cut(0.300000001, 0.300000002)
    assert 0.300000001 < value <= 0.300000002


# ----------------------------------------------------------------------------- metrics


def test_handoff_timing_classifies_first_handoff() -> None:
    labelled = [
        (_replay("early", [0.1] * 6, handoffs=(0,)), _gold(True, (2, 3))),
        (_replay("on-time", [0.1] * 6, handoffs=(3,)), _gold(True, (2, 3))),
        (_replay("late", [0.1] * 6, handoffs=(5,)), _gold(True, (2, 3))),
        (_replay("missed", [0.1] * 6), _gold(True, (2, 3))),
        (_replay("false-alarm", [0.1] * 6, handoffs=(1,)), _gold(False)),
    ]

    timing = handoff_timing(labelled)

    assert (timing["premature"], timing["on_time"], timing["late"]) == (1, 1, 1)
    # Leads: 3 - 0, 3 - 3, 3 - 5.
    assert timing["mean_lead_turns"] == pytest.approx(1 / 3)
    assert timing["median_lead_turns"] == 0
    assert timing["mean_lead_seconds"] is None


def test_conversation_quality_confusion() -> None:
    labelled = [
        (_replay("tp", [0.1], handoffs=(0,)), _gold(True)),
        (_replay("fp", [0.1], handoffs=(0,)), _gold(False)),
        (_replay("fn", [0.1]), _gold(True)),
        (_replay("tn", [0.1]), _gold(False)),
        (_replay("tn2", [0.1]), _gold(False)),
    ]

    quality = conversation_quality(labelled)

    assert (quality["tp"], quality["fp"], quality["fn"], quality["tn"]) == (1, 1, 1, 2)
    assert quality["precision"] == pytest.approx(0.5)
    assert quality["recall"] == pytest.approx(0.5)


def test_gt_t_exact_and_one_off() -> None:
    labelled = [
        (_replay("exact", [0.1] * 4, handoffs=(2,)), _gold(True, (2, 2))),
        (_replay("one-late", [0.1] * 4, handoffs=(3,)), _gold(True, (2, 2))),
    ]

    scores = gt_t_scores(labelled)

    # At t = 1 a handoff one turn late scores exp(-1/2) and the exact one scores 1.
    assert scores["t1"] == pytest.approx(100 * (1 + np.exp(-0.5)) / 2)
    assert scores["t3"] == pytest.approx(100 * (1 + np.exp(-1 / 18)) / 2)


def test_agent_load_by_team_and_tier() -> None:
    replays = [
        _replay("a", [0.1], handoffs=(0,), team="billing", tier=Tier.IMMEDIATE),
        _replay("b", [0.1], handoffs=(0,), team="billing", tier=Tier.RAPID),
        _replay("c", [0.1], handoffs=(0,), team="general", tier=Tier.RAPID),
        _replay("d", [0.1]),
    ]

    load = agent_load(replays)

    assert load["billing"] == {"immediate": 1, "rapid": 1, "scheduled": 0, "total": 2,
                               "per_1000_conversations": 500.0}
    assert load["general"]["rapid"] == 1


# ----------------------------------------------------------------------------- policy file


def test_tuned_policy_keeps_comments_and_loads(tmp_path: Path) -> None:
    source = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")

    text = tuned_policy_text(source, {"escalation": 0.4321, "prepare": 0.00001},
                             ["tuned for a test"], source="default")
    path = tmp_path / "tuned.yaml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)

    assert text.startswith("# tuned for a test\n")
    assert "# Phrase syntax for `keywords`" in text
    assert policy.thresholds.escalation == 0.4321
    assert policy.thresholds.prepare == 0.00001


def test_tuned_policy_without_thresholds_block(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    del data["thresholds"]
    source = yaml.safe_dump(data, sort_keys=False)

    text = tuned_policy_text(source, {"escalation": 0.5, "prepare": 0.25}, [], source="copy")
    path = tmp_path / "tuned.yaml"
    path.write_text(text, encoding="utf-8")

    assert load_policy(path).thresholds.escalation == 0.5


def test_tuned_policy_rejects_prepare_above_escalation() -> None:
    source = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")

    with pytest.raises(PolicyError, match="prepare 0.6 is above escalation 0.5"):
        tuned_policy_text(source, {"escalation": 0.5, "prepare": 0.6}, [], source="default")


def test_format_threshold_has_no_exponent() -> None:
    assert format_threshold(1e-05) == "0.00001"
    assert format_threshold(1.0) == "1.0"
    assert float(format_threshold(0.1 + 0.2)) == 0.1 + 0.2
