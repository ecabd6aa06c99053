"""`escalation benchmark uss`: per-turn user satisfaction on USS (Sun et al., SIGIR 2021).

The label of a user turn is the majority of its annotators' 1-5 ratings (ties to the lower),
the input is the dialogue up to and including that turn, and the metrics are UAR over the
five levels, Cohen's kappa, Spearman's rho and the F1 of "dissatisfied" (rating <= 2). The
model is the product's: FeatureVectors from serving.features over the bundle's encoder and
heads, and ONNX heads fitted on the training rows only.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 10
DEFAULT_INNER_FOLDS = 3
# Grid of the rating head, searched on inner folds of the training rows.
# NOTE: on the full MultiWOZ and SGD files the nested search chose C=0.002, the grid's
# smallest value, in 19 of 20 folds; smaller values were not tried.
DEFAULT_RATING_C_GRID = (0.002, 0.01, 0.05)
DEFAULT_CLASS_WEIGHTS: tuple[str | None, ...] = ("balanced", None)
# Dialogues of the test data scored from raw text to measure speed; about 11 customer turns
# each in MultiWOZ and SGD.
DEFAULT_SPEED_DIALOGUES = 30


class TurnInput(StrEnum):
    """Input the model gets when it rates a user turn."""

    # The dialogue up to and including the user turn: what the live service scores.
    TURN = "turn"
    # The previous customer turn's features: less than the USS authors' input, which is the
    # dialogue up to the system response before the rated user turn.
    PREVIOUS = "previous"


def register(app: typer.Typer) -> None:
    """Add the `uss` subcommand to the benchmark command group."""
    app.command("uss")(uss)


def uss(
    data: Annotated[Path | None, typer.Option(
        "--data", help="USS file (.txt or .txt.gz) for k-fold cross-validation.",
        dir_okay=False)] = None,
    folds: Annotated[int, typer.Option(
        help="Number of cross-validation folds (contiguous blocks of user turns in file "
             "order).", min=2)] = DEFAULT_FOLDS,
    train: Annotated[Path | None, typer.Option(
        "--train", help="USS file to train on for the cross-domain protocol; needs --test.",
        dir_okay=False)] = None,
    test: Annotated[Path | None, typer.Option(
        "--test", help="USS file to test on for the cross-domain protocol; needs --train.",
        dir_okay=False)] = None,
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", "-b", help="Bundle whose encoder, sentiment and frustration heads compute "
        "the features; default: the newest under models/.", file_okay=False)] = None,
    embedding_cache: Annotated[Path | None, typer.Option(
        help="Folder of the encoder embedding cache; default: var/embeddings, the training "
             "job's cache.", file_okay=False)] = None,
    turn_input: Annotated[TurnInput, typer.Option(
        "--input", help="turn: features of the dialogue up to and including the rated user "
        "turn (the live setting). previous: features of the previous customer turn, without "
        "the rated turn's text, for comparison with the authors' input.")] = TurnInput.TURN,
    speed_dialogues: Annotated[int, typer.Option(
        help="Test dialogues scored from raw text, without the cache, to measure messages "
             "per second; 0 skips the measurement.", min=0)] = DEFAULT_SPEED_DIALOGUES,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object as the last line.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log at DEBUG level instead of INFO.")] = False,
) -> None:
    """Predict each user turn's 1-5 satisfaction rating on USS with the product's features.

    With --data it runs the authors' protocol, k-fold cross-validation over the user turns in
    file order. With --train and --test it trains on one corpus and tests on another.
    """
    from pipelines.cli_common import configure_logging, resolve_bundle

    configure_logging(verbose)
    if (data is None) == (train is None and test is None):
        raise typer.BadParameter("pass either --data FILE (cross-validation) or both --train "
                                 "FILE and --test FILE (cross-domain), not both or neither")
    if data is None and (train is None or test is None):
        raise typer.BadParameter("the cross-domain protocol needs both --train FILE and "
                                 "--test FILE")

    from pipelines.benchmark.result import report
    from pipelines.benchmark.uss_run import UssRun

    run = UssRun(resolve_bundle(bundle), embedding_cache, speed_dialogues=speed_dialogues,
                 previous_turn=turn_input is TurnInput.PREVIOUS)
    started = time.perf_counter()
    if data is not None:
        result = run.cross_validation(data, folds)
    else:
        assert train is not None and test is not None  # checked above
        result = run.cross_domain(train, test)
    result.details["seconds_total"] = time.perf_counter() - started
    report(result, as_json)

