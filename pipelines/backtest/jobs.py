"""The backtest and tuning jobs: load data and runtimes, replay, measure, write the outputs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipelines.backtest.gold import GoldOutcome, gold_outcome
from pipelines.backtest.metrics import compare, decision_changes, run_metrics
from pipelines.backtest.policy_file import (
    read_policy_source,
    tuned_policy_text,
    write_text_atomically,
)
from pipelines.backtest.replay import ReplayRun, policy_label, replay_all
from pipelines.backtest.scoring import CachingScorer
from pipelines.backtest.sweep import threshold_curve
from pipelines.backtest.tune import (
    Choice,
    Target,
    check_support,
    choose_escalation,
    choose_prepare,
)
from pipelines.train.data import read_any
from serving.hashing import sha256_file
from serving.roster import EXAMPLE_ROSTER_PATH, Roster, load_roster
from serving.rules import load_policy, policy_from_dict
from serving.schema import Conversation
from serving.yaml_loader import UniqueKeyLoader

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Side:
    """A bundle folder and a policy file (None: the packaged policy) to replay under."""

    bundle: Path
    policy: Path | None


@dataclass(frozen=True)
class LabelSettings:
    """Label settings that turn satisfaction ratings into escalation labels, as in training."""

    horizon: int
    dissatisfied_rating: int


@dataclass(frozen=True)
class DataSet:
    """Conversations read from one file, with their recorded outcomes and the file's digest."""

    path: Path
    sha256: str
    conversations: list[Conversation]
    golds: list[GoldOutcome | None]

    def describe(self) -> dict[str, Any]:
        """Return the file, its digest and its counts for reports."""
        return {"path": str(self.path), "sha256": self.sha256,
                "conversations": len(self.conversations),
                "labelled": sum(gold is not None for gold in self.golds)}


def load_data(path: Path, labels: LabelSettings) -> DataSet:
    """Read past conversations in any format `escalation evaluate --data` reads.

    Raises FileNotFoundError for a missing file and ValueError for a file without
    conversations or with contradictory labels.
    """
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found; pass past conversations as JSON "
                                "Lines, a USS .txt[.gz] file or a GoEmotions .tsv[.gz] file")
    conversations = read_any(path)
    if not conversations:
        raise ValueError(f"data file {path} contains no conversation; pass a file with at "
                         "least one")
    golds = [gold_outcome(conversation, horizon=labels.horizon,
                          dissatisfied_rating=labels.dissatisfied_rating)
             for conversation in conversations]
    return DataSet(path, sha256_file(path), conversations, golds)


def load_scorers(candidate: Side, baseline: Side) -> tuple[CachingScorer, CachingScorer]:
    """Load the candidate and baseline runtimes, sharing one when they use the same bundle."""
    candidate_scorer = CachingScorer(candidate.bundle, policy=load_policy(candidate.policy))
    if candidate.bundle.resolve() == baseline.bundle.resolve():
        return candidate_scorer, candidate_scorer.with_policy(load_policy(baseline.policy))
    return candidate_scorer, CachingScorer(baseline.bundle, policy=load_policy(baseline.policy))


def run_backtest(
    data: DataSet,
    candidate: Side,
    baseline: Side,
    *,
    roster_path: Path | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Replay `data` under both sides and return the report and the changed decisions."""
    started = time.perf_counter()
    roster = load_roster(roster_path or EXAMPLE_ROSTER_PATH)
    candidate_scorer, baseline_scorer = load_scorers(candidate, baseline)

    runs = {}
    for name, scorer, side in (("baseline", baseline_scorer, baseline),
                               ("candidate", candidate_scorer, candidate)):
        runs[name] = _replay(scorer, data.conversations, roster, side.policy, name, progress)

    baseline_metrics = run_metrics(runs["baseline"], data.golds)
    candidate_metrics = run_metrics(runs["candidate"], data.golds)
    changes = decision_changes(runs["baseline"], runs["candidate"])
    report = {
        "data": data.describe(),
        "roster": str(roster_path or EXAMPLE_ROSTER_PATH),
        "baseline": baseline_metrics,
        "candidate": candidate_metrics,
        "delta": compare(baseline_metrics, candidate_metrics),
        "changed_conversations": len(changes),
        "encoded_messages": candidate_scorer.encoded_texts + (
            baseline_scorer.encoded_texts if baseline_scorer is not candidate_scorer else 0),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return report, changes


def run_tuning(
    data: DataSet,
    side: Side,
    target: Target,
    *,
    prepare_recall: float,
    output: Path,
    allow_weak: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pick thresholds for `target` on `data`, write the tuned policy and return the figures.

    Raises ValueError when no threshold meets the target, or, unless `allow_weak`, when the
    chosen one finds no conversation that needed a human or escalates too few labelled ones.
    """
    started = time.perf_counter()
    roster = load_roster(EXAMPLE_ROSTER_PATH)
    scorer = CachingScorer(side.bundle, policy=load_policy(side.policy))
    run = _replay(scorer, data.conversations, roster, side.policy, "tune", progress)

    curve = threshold_curve(run.replays, data.golds)
    escalation = choose_escalation(curve, target)
    if not allow_weak:
        check_support(curve, escalation, target)
    prepare = choose_prepare(curve, escalation, prepare_recall)

    source_text, source_name = read_policy_source(side.policy)
    tuned_at = datetime.now(UTC).isoformat(timespec="seconds")
    summary: dict[str, Any] = {
        "target": {"kind": target.kind, "value": target.value},
        "escalation": _choice_dict(escalation),
        "prepare": {**_choice_dict(prepare), "target_recall": prepare_recall},
        "data": {**data.describe(), "needed_human": curve.positives},
        "bundle": scorer.manifest.name,
        "policy_source": source_name,
        "tuned_at": tuned_at,
    }
    text = tuned_policy_text(
        source_text, {"escalation": escalation.threshold, "prepare": prepare.threshold},
        _header(summary, target), source=source_name)

    summary["replayed"] = _confirm(scorer, data, roster, text, escalation, progress)
    write_text_atomically(output, text)
    summary["output"] = str(output)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    logger.info("tuned policy written to %s (escalation %.4f, prepare %.4f)", output,
                escalation.threshold, prepare.threshold)
    return summary


def _replay(scorer: CachingScorer, conversations: Sequence[Conversation], roster: Roster,
            policy: Path | None, step: str, progress: Progress | None) -> ReplayRun:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(step, done, total)

    return replay_all(scorer, conversations, roster, policy_name=policy_label(policy),
                      progress=report)


def _confirm(scorer: CachingScorer, data: DataSet, roster: Roster, text: str,
             escalation: Choice, progress: Progress | None) -> dict[str, Any]:
    """Replay the data under the written policy and check it gives the swept figures."""
    policy = policy_from_dict(yaml.load(text, Loader=UniqueKeyLoader), source="tuned policy")
    run = _replay(scorer.with_policy(policy), data.conversations, roster, None, "confirm",
                  progress)
    quality = run_metrics(run, data.golds)
    rate = quality["escalation"]["conversation_rate"]
    if rate != escalation.rate:
        raise RuntimeError(
            f"the replay under the tuned policy escalates a share of {rate} but the threshold "
            f"sweep predicted {escalation.rate}. The policy was not written, because the "
            "sweep and the runtime disagree")
    return {"conversation_rate": rate, "precision": quality["quality"]["precision"],
            "recall": quality["quality"]["recall"], "turn_rate":
            quality["escalation"]["turn_rate"]}


def _choice_dict(choice: Choice) -> dict[str, Any]:
    return {"threshold": choice.threshold, "conversation_rate": choice.rate,
            "precision": choice.precision, "recall": choice.recall}


def _header(summary: dict[str, Any], target: Target) -> list[str]:
    escalation = summary["escalation"]
    prepare = summary["prepare"]
    data = summary["data"]
    return [
        f"Thresholds set by `escalation tune` at {summary['tuned_at']}; everything else is "
        f"a copy of {summary['policy_source']}.",
        f"Target: {target.describe()}.",
        f"escalation {escalation['threshold']}: conversation escalation rate "
        f"{escalation['conversation_rate']:.4f}, precision {_figure(escalation['precision'])}, "
        f"recall {_figure(escalation['recall'])}.",
        f"prepare {prepare['threshold']}: {_figure(prepare['recall'])} of the conversations "
        f"that needed a human were prepared for or escalated (target "
        f"{prepare['target_recall']:g}).",
        f"Data: {data['path']} (sha256 {data['sha256']}), {data['conversations']} "
        f"conversations, {data['labelled']} labelled, {data['needed_human']} needed a human.",
        f"Bundle: {summary['bundle']}.",
    ]


def _figure(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
