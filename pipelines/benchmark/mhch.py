"""The `escalation benchmark mhch` subcommand: the handoff head on the MHCH-DAMI corpora."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

logger = logging.getLogger(__name__)

HELP = """Train the token-encoder escalation head on MHCH dialogues and score every turn.

Either --train FILE --test FILE (train on one file, evaluate on another of the same format;
--save-model DIR also writes the trained model folder), --model DIR --test FILE (score a file
with a saved model folder and its saved threshold, nothing refitted) or --data FILE --folds K
(dialogue-grouped K-fold cross-validation on one file; the headline numbers are the means over
folds, per-fold numbers are in details). Files are MHCH-DAMI JSON Lines (.jsonl or .jsonl.gz).

All metrics are percentages (0-100), as in Liu et al., AAAI 2021: f1 is F1 of the handoff
class over utterances, macro_f1 their Macro F1, auc the ROC-AUC, gt_1/gt_2/gt_3 GT-I/II/III.
Their DAMI model on the Clothing test split, trained on 2,800 dialogues: F1 67.3, GT-I 70.3,
GT-II 79.1, GT-III 83.9. The threshold is chosen inside the training dialogues only.
"""


def register(benchmark_app: typer.Typer) -> None:
    """Add the `mhch` subcommand to `escalation benchmark`."""
    benchmark_app.command(name="mhch", help=HELP)(mhch)


def mhch(
    train: Annotated[Path | None, typer.Option(
        "--train", help="MHCH file to train on; needs --test.", exists=True,
        dir_okay=False)] = None,
    test: Annotated[Path | None, typer.Option(
        "--test", help="MHCH file to evaluate on; needs --train or --model.", exists=True,
        dir_okay=False)] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="Saved token model folder to evaluate on --test, without training.",
        exists=True, file_okay=False)] = None,
    save_model: Annotated[Path | None, typer.Option(
        "--save-model", help="New folder to write the model trained on --train into "
        "(train/test mode only).", file_okay=False)] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="MHCH file to cross-validate on; needs --folds.", exists=True,
        dir_okay=False)] = None,
    folds: Annotated[int | None, typer.Option(
        "--folds", help="Number of dialogue-grouped cross-validation folds (2 or more).")] = None,
    c: Annotated[float, typer.Option(
        "--c", help="Inverse L2 regularisation strength of the logistic regression.",
        min=1e-6)] = 3.0,
    scaler: Annotated[str, typer.Option(
        "--scaler", help="Scaler before the logistic regression: none or maxabs.")] = "none",
    threshold_rule: Annotated[str, typer.Option(
        "--threshold-rule", help="How the threshold is chosen on out-of-fold predictions of "
        "the training dialogues: f1 (max F1) or f1_gt1 (max mean of F1 and GT-I).")] = "f1",
    ngram_max: Annotated[int, typer.Option(
        "--ngram-max", help="Maximum word n-gram length of the TF-IDF encoder.", min=1, max=5)] = 2,
    min_df: Annotated[int, typer.Option(
        "--min-df", help="Minimum number of training turns an n-gram must occur in.",
        min=1)] = 2,
    calibration_folds: Annotated[int, typer.Option(
        "--calibration-folds", help="Grouped folds for calibration and the threshold.",
        min=2)] = 3,
    gt_lambda: Annotated[float, typer.Option(
        "--gt-lambda", help="GT-T asymmetry lambda in [0, 1); 0 as in the authors' code.",
        min=0.0, max=0.999)] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of folds and solvers.")] = 13,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the result as one JSON object on the last line.")] = False,
    mlflow: Annotated[bool, typer.Option(
        "--mlflow/--no-mlflow", help="Log the run to MLflow (experiment "
        "escalation-benchmarks).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug output.")] = False,
) -> None:
    """Run the MHCH benchmark (see the command help)."""
    from pipelines.cli_common import configure_logging

    configure_logging(verbose)
    mode = _check_mode(train, test, data, folds, model)
    _check_save_model(save_model, mode)
    if threshold_rule not in ("f1", "f1_gt1"):
        raise typer.BadParameter(f"--threshold-rule is {threshold_rule!r}; use f1 or f1_gt1",
                                 param_hint="--threshold-rule")
    if scaler not in ("none", "maxabs"):
        raise typer.BadParameter(f"--scaler is {scaler!r}; use none or maxabs",
                                 param_hint="--scaler")

    from pipelines.benchmark.mhch_cv import MhchSettings
    from pipelines.benchmark.result import report
    from pipelines.train.tokens import TokenEncoderSettings

    settings = MhchSettings(
        encoder=TokenEncoderSettings(ngram_range=(1, ngram_max), min_df=min_df),
        c=c, scaler=scaler, threshold_rule=threshold_rule,
        calibration_folds=calibration_folds, gt_lambda=gt_lambda, seed=seed,
    )
    if mode == "split":
        assert train is not None and test is not None  # checked by _check_mode
        result = _run_split(train, test, settings, save_model)
    elif mode == "model":
        assert model is not None and test is not None
        result = _run_saved_model(model, test, settings.gt_lambda)
    else:
        assert data is not None and folds is not None
        result = _run_cross_validation(data, folds, settings)
    report(result, as_json, log_to_mlflow=mlflow)


def _check_mode(train: Path | None, test: Path | None, data: Path | None,
                folds: int | None, model: Path | None = None) -> str:
    if data is None and folds is None and model is None and train is not None \
            and test is not None:
        return "split"
    if data is None and folds is None and train is None and model is not None \
            and test is not None:
        return "model"
    if train is None and test is None and model is None and data is not None \
            and folds is not None:
        if folds < 2:
            raise typer.BadParameter(f"--folds is {folds}; use 2 or more", param_hint="--folds")
        return "cv"
    raise typer.BadParameter(
        "pass one of --train FILE --test FILE, --model DIR --test FILE, or --data FILE "
        "--folds K (not two of them, not one half of a pair)",
        param_hint="--train/--test/--model/--data/--folds")


def _check_save_model(save_model: Path | None, mode: str) -> None:
    # Checked before training so a taken folder does not cost a training run.
    if save_model is None:
        return
    if mode != "split":
        raise typer.BadParameter("--save-model needs --train FILE --test FILE; cross-validation "
                                 "and --model runs train no single model to save",
                                 param_hint="--save-model")
    from serving.token_model import MANIFEST_FILE

    if (save_model / MANIFEST_FILE).exists():
        raise typer.BadParameter(f"{save_model} already contains a token model; pass a new "
                                 "folder", param_hint="--save-model")


def _read(path: Path) -> Any:
    from pipelines.datasets.mhch import read_mhch

    return read_mhch(path)


def _run_split(train_path: Path, test_path: Path, settings: Any,
               save_model: Path | None) -> Any:
    from pipelines.benchmark.mhch_cv import train_and_evaluate, trivial_floors
    from pipelines.benchmark.result import BenchmarkResult

    train_set, test_set = _read(train_path), _read(test_path)
    logger.info("MHCH benchmark: train %s (%d dialogues), test %s (%d dialogues)",
                train_path.name, len(train_set), test_path.name, len(test_set))
    run = train_and_evaluate(train_set, test_set, settings, save_model=save_model)
    details = {
        "threshold": run.threshold,
        "train_dialogues": run.train_dialogues,
        "test_dialogues": run.test_dialogues,
        "test_turns": run.test_turns,
        "seconds": run.seconds,
        "trivial_floors": trivial_floors(test_set, settings.gt_lambda),
    }
    if save_model is not None:
        details["saved_model"] = str(save_model)
    params = {"mode": "train-test", "train": train_path.name, "test": test_path.name,
              **settings.describe()}
    return BenchmarkResult("mhch", run.metrics, params, details)


def _run_saved_model(model_dir: Path, test_path: Path, gt_lambda: float) -> Any:
    from pipelines.benchmark.mhch_cv import trivial_floors
    from pipelines.benchmark.mhch_model import evaluate_saved_model
    from pipelines.benchmark.result import BenchmarkResult
    from serving.errors import BundleError

    test_set = _read(test_path)
    logger.info("MHCH benchmark: saved model %s, test %s (%d dialogues)", model_dir,
                test_path.name, len(test_set))
    try:
        run = evaluate_saved_model(model_dir, test_set, gt_lambda=gt_lambda)
    except BundleError as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None
    details = {
        "threshold": run.threshold,
        "train_dialogues": run.train_dialogues,
        "test_dialogues": run.test_dialogues,
        "test_turns": run.test_turns,
        "seconds": run.seconds,
        "trivial_floors": trivial_floors(test_set, gt_lambda),
    }
    params = {"mode": "saved-model", "model": str(model_dir), "test": test_path.name,
              "gt_lambda": gt_lambda}
    return BenchmarkResult("mhch", run.metrics, params, details)


def _run_cross_validation(data_path: Path, folds: int, settings: Any) -> Any:
    from pipelines.benchmark.mhch_cv import cross_validate, mean_metrics, trivial_floors
    from pipelines.benchmark.result import BenchmarkResult

    conversations = _read(data_path)
    logger.info("MHCH benchmark: %d-fold cross-validation on %s (%d dialogues)", folds,
                data_path.name, len(conversations))
    runs = cross_validate(conversations, folds, settings)
    details = {
        "folds": [{**run.metrics, "threshold": run.threshold,
                   "train_dialogues": run.train_dialogues,
                   "test_dialogues": run.test_dialogues, "seconds": run.seconds}
                  for run in runs],
        "trivial_floors": trivial_floors(conversations, settings.gt_lambda),
    }
    params = {"mode": "cross-validation", "data": data_path.name, "folds": folds,
              **settings.describe()}
    return BenchmarkResult("mhch", mean_metrics(runs), params, details)
