"""`escalation benchmark frustration`: the frustration head beside VADER on GoEmotions, with speed.

Ground truth is the project's frustration label: a GoEmotions comment is frustrated when it
carries anger, annoyance, disappointment or disapproval. The head's probability and VADER's
max(0, -compound) are ranked against it (ROC-AUC, PR-AUC). F1, precision and recall use the
bundle's frustration threshold for the head and VADER's negative cut-off (0.05) for VADER.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipelines.benchmark.sentiment import (
    BatchSizeOption,
    BundleOption,
    JsonOption,
    VerboseOption,
)

if TYPE_CHECKING:
    from pipelines.benchmark.frustration_data import FrustrationSample
    from pipelines.benchmark.result import BenchmarkResult
    from serving.scorer import Scorer

logger = logging.getLogger(__name__)

NAME = "goemotions-frustration"

DataOption = Annotated[Path | None, typer.Option(
    "--data", "-d", help="GoEmotions split (.tsv or .tsv.gz, labels.txt beside it) or JSON "
    "Lines conversations with labels.frustration on customer turns. Default: the GoEmotions "
    "test split (the shared copy, else the bundled one).", exists=True, dir_okay=False)]


def register(app: typer.Typer) -> None:
    """Add `frustration` to the `escalation benchmark` command group."""
    app.command("frustration")(frustration)


def frustration(
    data: DataOption = None,
    bundle: BundleOption = None,
    batch_size: BatchSizeOption = 32,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Measure the frustration head and VADER on GoEmotions: ROC-AUC, PR-AUC, F1 and speed.

    The head runs one message per call as the live service does, then in batches for a second
    speed figure.
    """
    from pipelines.benchmark.frustration_data import (
        default_frustration_file,
        read_frustration_file,
    )
    from pipelines.benchmark.result import report
    from pipelines.cli_common import configure_logging, resolve_bundle
    from serving.scorer import Scorer

    configure_logging(verbose)
    path = data if data is not None else default_frustration_file()
    sample = read_frustration_file(path)
    scorer = Scorer(resolve_bundle(bundle))

    logger.info("frustration benchmark started: %d messages, bundle %s", len(sample.texts),
                scorer.manifest.name)
    result = run_frustration_benchmark(scorer, sample, batch_size)
    logger.info("frustration benchmark finished: bundle %s, PR-AUC %s", scorer.manifest.name,
                result.metrics["pr_auc"])
    report(result, as_json)


def run_frustration_benchmark(
    scorer: Scorer, sample: FrustrationSample, batch_size: int
) -> BenchmarkResult:
    """Score every message with the bundle and with VADER, and return the metrics and speed."""
    from pipelines.benchmark.result import BenchmarkResult
    from pipelines.benchmark.speed import machine_description, measure_product, measure_vader
    from pipelines.evaluate.evaluation import VADER_FRUSTRATION_THRESHOLD
    from pipelines.evaluate.metrics import binary_metrics
    from pipelines.evaluate.vader import VaderBaseline, frustration_from_compound

    if not sample.texts:
        raise ValueError(f"{sample.source} has no messages to benchmark")
    threshold = scorer.manifest.thresholds.frustration

    product = measure_product(scorer, sample.texts, batch_size)
    vader = measure_vader(VaderBaseline(), sample.texts)

    model = binary_metrics(sample.labels, product.frustration, threshold)
    batched = binary_metrics(sample.labels, product.batched_frustration, threshold)
    baseline = binary_metrics(sample.labels, frustration_from_compound(vader.compound),
                              VADER_FRUSTRATION_THRESHOLD)

    metrics: dict[str, float | None] = {
        "roc_auc": model["roc_auc"],
        "pr_auc": model["pr_auc"],
        "f1": model["f1"],
        "messages_per_second": product.single.messages_per_second,
        "messages_per_second_batched": product.batched.messages_per_second,
        "vader_roc_auc": baseline["roc_auc"],
        "vader_pr_auc": baseline["pr_auc"],
        "vader_f1": baseline["f1"],
        "vader_messages_per_second": vader.single.messages_per_second,
    }
    details: dict[str, Any] = {
        "n": len(sample.texts),
        "positive_rate": float(sample.labels.mean()),
        "model": {**model, "threshold": threshold},
        "model_batched": {**batched, "threshold": threshold},
        "vader": {**baseline, "threshold": VADER_FRUSTRATION_THRESHOLD},
        "speed": {"single": product.single.to_dict(), "batched": product.batched.to_dict(),
                  "vader": vader.single.to_dict()},
        "machine": machine_description(),
    }
    params = {
        "data": str(sample.source),
        "bundle": scorer.manifest.name,
        "encoder_variant": scorer.manifest.encoder.variant,
        "batch_size": batch_size,
    }
    return BenchmarkResult(NAME, metrics, params=params, details=details)
