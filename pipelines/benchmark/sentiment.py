"""`escalation benchmark sentiment`: the sentiment head beside VADER on TweetEval, with speed.

The product's sentiment head predicts negative, neutral or positive, learned from GoEmotions
comments grouped by the dataset's sentiment groups (see `pipelines.datasets.goemotions`).
TweetEval's sentiment ids 0, 1 and 2 are negative, neutral and positive, so each TweetEval
class maps to the head's class of the same name. The two label rules still differ: a
GoEmotions comment with only ambiguous emotions (confusion, curiosity, realization, surprise)
counts as neutral, and one with mixed positive and negative emotions counts as negative.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import numpy as np

    from pipelines.benchmark.result import BenchmarkResult
    from pipelines.benchmark.sentiment_data import SentimentSample
    from serving.scorer import Scorer

logger = logging.getLogger(__name__)

NAME = "tweeteval-sentiment"

# Class name in the data (TweetEval ids 0, 1, 2 by its mapping.txt) -> the head's class.
CLASS_MAPPING = {"negative": "negative", "neutral": "neutral", "positive": "positive"}

# The best published figures we compare with come from the model card of
# cardiffnlp/twitter-roberta-base-sentiment-latest, a RoBERTa-base pre-trained on tweets and
# fine-tuned on TweetEval sentiment train. The Hugging Face autoevaluator measured macro-F1
# 0.7242 (accuracy 0.7220) on the test split and 0.7606 (accuracy 0.7715) on validation.
PUBLISHED = {
    "model": "cardiffnlp/twitter-roberta-base-sentiment-latest",
    "source": "huggingface.co/cardiffnlp/twitter-roberta-base-sentiment-latest, model-index "
              "results (Hugging Face autoevaluator)",
    "macro_f1_test": 0.7242,
    "accuracy_test": 0.7220,
    "macro_f1_validation": 0.7606,
    "accuracy_validation": 0.7715,
}

DataOption = Annotated[Path | None, typer.Option(
    "--data", "-d", help="TweetEval sentiment split `<split>_text.txt` (its `<split>_labels.txt` "
    "beside it), or JSON Lines conversations with labels.sentiment on customer turns. Default: "
    "the TweetEval validation split among the shared corpora.", exists=True, dir_okay=False)]
LabelsOption = Annotated[Path | None, typer.Option(
    "--labels", help="TweetEval labels file, one id per line; default: `<split>_labels.txt` "
    "beside --data.", exists=True, dir_okay=False)]
BundleOption = Annotated[Path | None, typer.Option(
    "--bundle", "-b", help="Bundle folder to use; default: the newest under models/.",
    file_okay=False)]
BatchSizeOption = Annotated[int, typer.Option(
    "--batch-size", help="Messages per encoder call in the batched speed pass.", min=1)]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print every figure as one JSON object on the last line.")]
VerboseOption = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Log at DEBUG level instead of INFO.")]


def register(app: typer.Typer) -> None:
    """Add `sentiment` to the `escalation benchmark` command group."""
    app.command("sentiment")(sentiment)


def sentiment(
    data: DataOption = None,
    labels: LabelsOption = None,
    bundle: BundleOption = None,
    batch_size: BatchSizeOption = 32,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Measure the sentiment head and VADER on TweetEval sentiment: macro-F1, macro recall, speed.

    The head runs one message per call as the live service does, then in batches for a second
    speed figure. VADER uses its compound rule (>= 0.05 positive, <= -0.05 negative).
    """
    from pipelines.benchmark.result import report
    from pipelines.benchmark.sentiment_data import default_sentiment_file, read_sentiment_file
    from pipelines.cli_common import configure_logging, resolve_bundle
    from serving.scorer import Scorer

    configure_logging(verbose)
    path = data if data is not None else default_sentiment_file()
    sample = read_sentiment_file(path, labels)
    scorer = Scorer(resolve_bundle(bundle))

    logger.info("sentiment benchmark started: %d messages, bundle %s", len(sample.texts),
                scorer.manifest.name)
    result = run_sentiment_benchmark(scorer, sample, batch_size)
    logger.info("sentiment benchmark finished: bundle %s, macro-F1 %.4f", scorer.manifest.name,
                result.metrics["macro_f1"] or float("nan"))
    report(result, as_json)


def run_sentiment_benchmark(
    scorer: Scorer, sample: SentimentSample, batch_size: int
) -> BenchmarkResult:
    """Score every message with the bundle and with VADER, and return the metrics and speed."""
    from pipelines.benchmark.result import BenchmarkResult
    from pipelines.benchmark.speed import machine_description, measure_product, measure_vader
    from pipelines.evaluate.metrics import multiclass_metrics
    from pipelines.evaluate.vader import VaderBaseline, proba_from_compound
    from serving.schema import SENTIMENT_CLASSES

    if not sample.texts:
        raise ValueError(f"{sample.source} has no messages to benchmark")
    names = [sentiment.value for sentiment in SENTIMENT_CLASSES]

    product = measure_product(scorer, sample.texts, batch_size)
    vader = measure_vader(VaderBaseline(), sample.texts)
    vader_proba = proba_from_compound(vader.compound)

    model = multiclass_metrics(sample.labels, product.sentiment, names)
    batched = multiclass_metrics(sample.labels, product.batched_sentiment, names)
    baseline = multiclass_metrics(sample.labels, vader_proba, names)

    metrics: dict[str, float | None] = {
        "macro_f1": model["macro_f1"],
        "macro_recall": model["macro_recall"],
        "accuracy": model["accuracy"],
        "messages_per_second": product.single.messages_per_second,
        "messages_per_second_batched": product.batched.messages_per_second,
        "vader_macro_f1": baseline["macro_f1"],
        "vader_macro_recall": baseline["macro_recall"],
        "vader_accuracy": baseline["accuracy"],
        "vader_messages_per_second": vader.single.messages_per_second,
    }
    details: dict[str, Any] = {
        "n": len(sample.texts),
        "label_counts": _counts(sample.labels, names),
        "class_mapping": CLASS_MAPPING,
        "model": model,
        "model_batched": batched,
        "vader": baseline,
        "confusion_model": _confusion(sample.labels, product.sentiment, len(names)),
        "confusion_vader": _confusion(sample.labels, vader_proba, len(names)),
        "speed": {"single": product.single.to_dict(), "batched": product.batched.to_dict(),
                  "vader": vader.single.to_dict()},
        "published": PUBLISHED,
        "machine": machine_description(),
    }
    params = {
        "data": str(sample.source),
        "bundle": scorer.manifest.name,
        "encoder_variant": scorer.manifest.encoder.variant,
        "batch_size": batch_size,
    }
    return BenchmarkResult(NAME, metrics, params=params, details=details)


def _counts(labels: np.ndarray, names: list[str]) -> dict[str, int]:
    import numpy as np

    return {name: int(np.sum(labels == index)) for index, name in enumerate(names)}


def _confusion(labels: np.ndarray, proba: np.ndarray, n_classes: int) -> list[list[int]]:
    # Rows are the true class and columns the predicted one, both in (negative, neutral,
    # positive) order.
    import numpy as np

    predicted = np.asarray(proba).argmax(axis=1)
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix.tolist()
