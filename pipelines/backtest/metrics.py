"""Backtest metrics of one replay run against the recorded outcomes, and what changed between two.

Undefined values (precision with no escalation, recall with no positive) are None, so the
report stays valid JSON.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pipelines.backtest.gold import GoldOutcome
from pipelines.backtest.replay import ConversationReplay, ReplayRun, TurnRecord
from pipelines.evaluate.handoff_metrics import golden_transfer_within_tolerance
from serving.tiers import Tier

GT_TOLERANCES = (1, 2, 3)
TIER_ORDER = (Tier.IMMEDIATE, Tier.RAPID, Tier.SCHEDULED)


def run_metrics(run: ReplayRun, golds: Sequence[GoldOutcome | None]) -> dict[str, Any]:
    """Return every backtest figure of one run; `golds` is aligned with `run.replays`."""
    if len(golds) != len(run.replays):
        raise ValueError(f"{len(golds)} gold outcomes for {len(run.replays)} replays; pass "
                         "one outcome (or None) per replayed conversation")
    labelled = [(replay, gold) for replay, gold in zip(run.replays, golds, strict=True)
                if gold is not None]
    return {
        "bundle": run.bundle,
        "policy": run.policy,
        "thresholds": {"escalation": run.thresholds.escalation,
                       "prepare": run.thresholds.prepare},
        "replay_seconds": round(run.seconds, 3),
        "escalation": escalation_rates(run.replays),
        "quality": conversation_quality(labelled),
        "turn_quality": turn_quality(labelled),
        "timing": handoff_timing(labelled),
        "gt_t": gt_t_scores(labelled),
        "load": agent_load(run.replays),
    }


def escalation_rates(replays: Sequence[ConversationReplay]) -> dict[str, Any]:
    """Share of conversations that escalate, share of turns that decide to escalate, by tier."""
    turns = [turn for replay in replays for turn in replay.turns]
    escalated = [replay for replay in replays if replay.escalations]
    first_tiers = Counter(replay.escalations[0].tier for replay in escalated)
    return {
        "conversations": len(replays),
        "escalated_conversations": len(escalated),
        "conversation_rate": _ratio(len(escalated), len(replays)),
        "turns": len(turns),
        "escalate_turns": sum(turn.escalate for turn in turns),
        "turn_rate": _ratio(sum(turn.escalate for turn in turns), len(turns)),
        "handoffs": sum(len(replay.escalations) for replay in replays),
        "first_tier": {tier.value: first_tiers.get(tier, 0) for tier in TIER_ORDER},
    }


def conversation_quality(
    labelled: Sequence[tuple[ConversationReplay, GoldOutcome]],
) -> dict[str, Any]:
    """Precision and recall of "this conversation escalates" against the recorded outcome."""
    predicted = [bool(replay.escalations) for replay, _ in labelled]
    actual = [gold.escalated for _, gold in labelled]
    sources = Counter(gold.source for _, gold in labelled)
    return {"labelled_conversations": len(labelled), "label_sources": dict(sources),
            **_confusion(actual, predicted)}


def turn_quality(labelled: Sequence[tuple[ConversationReplay, GoldOutcome]]) -> dict[str, Any]:
    """Precision and recall of each turn's escalate decision where the turn is labelled."""
    actual: list[bool] = []
    predicted: list[bool] = []
    for replay, gold in labelled:
        for index, due in gold.turn_labels.items():
            actual.append(due)
            predicted.append(replay.turns[index].escalate)
    return {"labelled_turns": len(actual), **_confusion(actual, predicted)}


def handoff_timing(
    labelled: Sequence[tuple[ConversationReplay, GoldOutcome]],
) -> dict[str, Any]:
    """Premature, on-time and late first handoffs of caught conversations, and their lead.

    A conversation counts when it needed a human, its labels give the turn, and the replay
    escalated it. Lead is the last on-time turn minus the handoff turn, so it is negative for a
    late handoff. It is measured in turns, and also in seconds where both turns carry timestamps.
    """
    counts = Counter[str]()
    lead_turns: list[int] = []
    lead_seconds: list[float] = []
    for replay, gold in labelled:
        first = replay.first_escalation
        if not gold.escalated or gold.window is None or first is None:
            continue
        start, end = gold.window
        handoff = first.turn_index
        if handoff < start:
            counts["premature"] += 1
        elif handoff > end:
            counts["late"] += 1
        else:
            counts["on_time"] += 1
        lead_turns.append(end - handoff)
        seconds = _seconds_between(replay.turns[handoff], replay.turns[end])
        if seconds is not None:
            lead_seconds.append(seconds)
    return {
        "caught_with_known_turn": len(lead_turns),
        "premature": counts["premature"],
        "on_time": counts["on_time"],
        "late": counts["late"],
        "mean_lead_turns": statistics.fmean(lead_turns) if lead_turns else None,
        "median_lead_turns": statistics.median(lead_turns) if lead_turns else None,
        "mean_lead_seconds": statistics.fmean(lead_seconds) if lead_seconds else None,
        "median_lead_seconds": statistics.median(lead_seconds) if lead_seconds else None,
    }


def gt_t_scores(labelled: Sequence[tuple[ConversationReplay, GoldOutcome]]) -> dict[str, Any]:
    """Golden Transfer within Tolerance (0-100) at t = 1, 2, 3 over every turn position.

    Gold positions are the labelled handoff turns; predicted positions are the turns where
    the replay handed the conversation over. Conversations that needed a human without a
    known turn are left out.
    """
    gold_sequences: list[list[int]] = []
    predicted_sequences: list[list[int]] = []
    for replay, gold in labelled:
        if gold.escalated and not gold.positions:
            continue
        length = len(replay.turns)
        gold_sequences.append([int(index in gold.positions) for index in range(length)])
        handoffs = {event.turn_index for event in replay.escalations}
        predicted_sequences.append([int(index in handoffs) for index in range(length)])
    scores: dict[str, Any] = {"conversations": len(gold_sequences)}
    for tolerance in GT_TOLERANCES:
        scores[f"t{tolerance}"] = (
            golden_transfer_within_tolerance(gold_sequences, predicted_sequences,
                                             tolerance=tolerance)
            if gold_sequences else None)
    return scores


def agent_load(replays: Sequence[ConversationReplay]) -> dict[str, Any]:
    """Handoffs per team and tier, and per 1,000 conversations, from the replay's routing."""
    counts: dict[str, Counter[str]] = {}
    for replay in replays:
        for event in replay.escalations:
            counts.setdefault(event.team_id, Counter())[event.tier.value] += 1
    teams = {}
    for team_id in sorted(counts):
        by_tier = {tier.value: counts[team_id].get(tier.value, 0) for tier in TIER_ORDER}
        total = sum(by_tier.values())
        teams[team_id] = {**by_tier, "total": total,
                          "per_1000_conversations": _per_thousand(total, len(replays))}
    return teams


def decision_changes(baseline: ReplayRun, candidate: ReplayRun) -> list[dict[str, Any]]:
    """List the conversations whose decision differs at some turn, with the first such turn.

    Both runs must replay the same conversations in the same order.
    """
    baseline_ids = [replay.conversation_id for replay in baseline.replays]
    candidate_ids = [replay.conversation_id for replay in candidate.replays]
    if baseline_ids != candidate_ids:
        raise ValueError("the baseline and candidate runs replayed different conversations; "
                         "replay the same data file for both")

    changes = []
    for old, new in zip(baseline.replays, candidate.replays, strict=True):
        differing = [index for index, (before, after) in enumerate(zip(old.turns, new.turns,
                                                                       strict=True))
                     if (before.tier, before.escalate) != (after.tier, after.escalate)]
        if not differing:
            continue
        turn = differing[0]
        changes.append({
            "conversation_id": old.conversation_id,
            "turn_index": turn,
            "baseline": _decision_at(old.turns[turn]),
            "candidate": _decision_at(new.turns[turn]),
            "baseline_first_escalation": _first_turn(old),
            "candidate_first_escalation": _first_turn(new),
            "changed_turns": len(differing),
        })
    return changes


def compare(baseline: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """Return candidate minus baseline for the headline figures; None where either is missing."""
    paths = (
        ("escalation", "conversation_rate"),
        ("escalation", "turn_rate"),
        ("quality", "precision"),
        ("quality", "recall"),
        ("quality", "f1"),
        ("turn_quality", "precision"),
        ("turn_quality", "recall"),
        ("timing", "premature"),
        ("timing", "late"),
        ("timing", "mean_lead_turns"),
        *(("gt_t", f"t{tolerance}") for tolerance in GT_TOLERANCES),
    )
    deltas: dict[str, Any] = {}
    for section, key in paths:
        old = baseline[section].get(key)
        new = candidate[section].get(key)
        deltas[f"{section}.{key}"] = new - old if old is not None and new is not None else None
    return deltas


def _confusion(actual: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    pairs = Counter(zip(actual, predicted, strict=True))
    tp, fp = pairs[(True, True)], pairs[(False, True)]
    fn, tn = pairs[(True, False)], pairs[(False, False)]
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall,
            "f1": f1}


def _decision_at(turn: TurnRecord) -> dict[str, Any]:
    return {"tier": turn.tier.value, "escalate": turn.escalate,
            "probability": round(turn.probability, 6)}


def _first_turn(replay: ConversationReplay) -> int | None:
    first = replay.first_escalation
    return first.turn_index if first is not None else None


def _seconds_between(earlier: TurnRecord, later: TurnRecord) -> float | None:
    if earlier.timestamp is None or later.timestamp is None:
        return None
    return (_as_utc(later.timestamp) - _as_utc(earlier.timestamp)).total_seconds()


def _as_utc(moment: datetime) -> datetime:
    # The schema compares a timestamp without an offset as UTC, and so does this.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _per_thousand(count: int, conversations: int) -> float | None:
    return 1000.0 * count / conversations if conversations else None
