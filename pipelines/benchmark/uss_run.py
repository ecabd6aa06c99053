"""One run of the USS benchmark: load files, run a protocol and gather its BenchmarkResult."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.benchmark.result import BenchmarkResult
from pipelines.benchmark.uss_data import (
    ProductComponents,
    UssTable,
    previous_turn_table,
    uss_table,
)
from pipelines.benchmark.uss_model import candidate_grid
from pipelines.benchmark.uss_protocol import (
    ProtocolSettings,
    SplitOutcome,
    cross_domain,
    cross_validate,
    split_metrics,
)
from pipelines.benchmark.uss_speed import scoring_speed
from pipelines.train.data import read_any
from pipelines.train.run import WORK_DIR
from serving.bundle import Manifest
from serving.errors import BundleError, DatasetError
from serving.schema import Conversation

logger = logging.getLogger(__name__)

# Sun et al.'s four metrics come first in every report, then the ranking of dissatisfied turns.
HEADLINE_KEYS = ("uar", "kappa", "rho", "f1_dissatisfied", "uar_all_levels",
                 "rating_dissatisfied_roc_auc", "escalation_dissatisfied_roc_auc",
                 "escalation_label_roc_auc", "rating_escalation_label_roc_auc")


# Escalation settings read from the bundle's manifest.
ESCALATION_KEYS = ("c_grid", "calibration_folds", "horizon", "dissatisfied_rating")


class UssRun:
    """The bundle's feature components plus the grids; runs either protocol."""

    def __init__(self, bundle_dir: Path, cache_dir: Path | None, *, speed_dialogues: int,
                 previous_turn: bool = False, rating_c_grid: tuple[float, ...] | None = None,
                 inner_folds: int | None = None) -> None:
        from pipelines.benchmark import uss

        self.components = ProductComponents(bundle_dir, cache_dir or WORK_DIR / "embeddings")
        self.escalation = _escalation_parameters(self.components.manifest)
        self.speed_dialogues = speed_dialogues
        self.previous_turn = previous_turn
        self.settings = ProtocolSettings(
            candidates=candidate_grid(list(rating_c_grid or uss.DEFAULT_RATING_C_GRID),
                                      list(uss.DEFAULT_CLASS_WEIGHTS)),
            inner_folds=inner_folds or uss.DEFAULT_INNER_FOLDS,
            escalation_c_grid=[float(c) for c in self.escalation["c_grid"]],
            escalation_calibration_folds=int(self.escalation["calibration_folds"]),
            seed=int(self.components.manifest.parameters["seed"]),
        )

    def cross_validation(self, path: Path, n_folds: int) -> BenchmarkResult:
        """Run k-fold cross-validation on one USS file."""
        conversations, table = self._load(path)
        if len(table.ratings) < n_folds * self.settings.inner_folds:
            raise DatasetError(
                f"{path} has {len(table.ratings)} user turns, too few for {n_folds} folds with "
                f"{self.settings.inner_folds} inner folds each; use a larger file or fewer "
                "--folds"
            )

        started = time.perf_counter()
        outcomes = cross_validate(table, n_folds, self.settings)
        seconds = time.perf_counter() - started

        per_fold = [split_metrics(outcome) for outcome in outcomes]
        metrics = {key: _mean(fold[key] for fold in per_fold) for key in HEADLINE_KEYS}
        pooled = split_metrics(_concatenate(outcomes))
        details: dict[str, Any] = {
            "pooled": pooled,
            "folds": [{**fold, **outcome.selection}
                      for fold, outcome in zip(per_fold, outcomes, strict=True)],
            "seconds_protocol": seconds,
            **self._speed(conversations, outcomes[-1]),
        }
        params = self._params(protocol="cross_validation", data=path.name, folds=n_folds,
                              turns=len(table.ratings), dialogues=table.n_dialogues)
        return BenchmarkResult(name=f"uss-cv-{_corpus(path)}{self._suffix()}", metrics=metrics,
                               params=params, details=details)

    def cross_domain(self, train_path: Path, test_path: Path) -> BenchmarkResult:
        """Train on every turn of one USS file and test on every turn of another."""
        _, train_table = self._load(train_path)
        test_conversations, test_table = self._load(test_path)

        started = time.perf_counter()
        outcome = cross_domain(train_table, test_table, self.settings)
        seconds = time.perf_counter() - started

        all_metrics = split_metrics(outcome)
        metrics: dict[str, float | None] = {key: all_metrics[key] for key in HEADLINE_KEYS}
        details: dict[str, Any] = {
            "all": all_metrics,
            "selection": outcome.selection,
            "seconds_protocol": seconds,
            **self._speed(test_conversations, outcome),
        }
        params = self._params(protocol="cross_domain", train=train_path.name,
                              test=test_path.name, turns_train=len(train_table.ratings),
                              turns_test=len(test_table.ratings))
        name = f"uss-{_corpus(train_path)}-to-{_corpus(test_path)}{self._suffix()}"
        return BenchmarkResult(name=name, metrics=metrics, params=params, details=details)

    def _load(self, path: Path) -> tuple[list[Conversation], UssTable]:
        if not path.is_file():
            raise DatasetError(f"USS file {path} not found; pass a USS .txt or .txt.gz file, "
                               "such as data/raw/uss/MWOZ.txt.gz")
        conversations = read_any(path)
        table = uss_table(path, conversations, self.components,
                          horizon=int(self.escalation["horizon"]),
                          dissatisfied_rating=int(self.escalation["dissatisfied_rating"]))
        if self.previous_turn:
            table = previous_turn_table(table)
        return conversations, table

    def _speed(self, conversations: list[Conversation], outcome: SplitOutcome
               ) -> dict[str, float]:
        if self.speed_dialogues == 0:
            return {}
        speed = scoring_speed(conversations[:self.speed_dialogues], self.components,
                              outcome.heads)
        logger.info("scored %d customer messages from raw text at %.1f messages/s",
                    int(speed["messages"]), speed["messages_per_second"])
        return {f"scoring_{key}": value for key, value in speed.items()}

    def _suffix(self) -> str:
        return "-previous-turn" if self.previous_turn else ""

    def _params(self, **values: Any) -> dict[str, Any]:
        settings = self.settings
        return {
            **values,
            "input": "previous customer turn" if self.previous_turn else "up to the turn",
            "bundle": self.components.manifest.name,
            "rating_candidates": [candidate.label() for candidate in settings.candidates],
            "inner_folds": settings.inner_folds,
            "escalation_c_grid": settings.escalation_c_grid,
            "escalation_horizon": int(self.escalation["horizon"]),
            "seed": settings.seed,
        }


def _escalation_parameters(manifest: Manifest) -> dict[str, Any]:
    # The escalation head is refitted with the settings its bundle was trained with, so the
    # benchmark measures that bundle's configuration even after train.yaml changes.
    escalation = manifest.parameters.get("escalation", {})
    missing = [key for key in ESCALATION_KEYS if key not in escalation]
    if missing or "seed" not in manifest.parameters:
        raise BundleError(
            f"bundle {manifest.name} records no training parameters "
            f"{missing or ['seed']} in its manifest; retrain it with `escalation train` "
            "or pass another --bundle"
        )
    return dict(escalation)


def _concatenate(outcomes: list[SplitOutcome]) -> SplitOutcome:
    return SplitOutcome(
        gold=np.concatenate([outcome.gold for outcome in outcomes]),
        predicted=np.concatenate([outcome.predicted for outcome in outcomes]),
        dissatisfied_probability=np.concatenate(
            [outcome.dissatisfied_probability for outcome in outcomes]),
        escalation_probability=np.concatenate(
            [outcome.escalation_probability for outcome in outcomes]),
        escalation_labels=np.concatenate([outcome.escalation_labels for outcome in outcomes]),
        head_seconds=sum(outcome.head_seconds for outcome in outcomes),
        heads=outcomes[-1].heads,
    )


def _mean(values: Any) -> float | None:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return float(np.mean(finite)) if finite else None


def _corpus(path: Path) -> str:
    return path.name.lower().split(".")[0]
