"""The `escalation` command line: train, evaluate, export, score and serve."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer

import serving  # noqa: F401  (switches telemetry off before any library below loads)
from pipelines.cli_common import (
    BundleOption,
    ConfigOption,
    ForceOption,
    PolicyOption,
    VerboseOption,
    check_output_path,
    finite_json,
    read_data_files,
)
from pipelines.cli_common import configure_logging as _configure_logging
from pipelines.cli_common import resolve_bundle as _resolve_bundle
from serving.errors import EscalationError

logger = logging.getLogger("escalation")

app = typer.Typer(
    name="escalation",
    help="Decide when an AI support chat must go to a human: train, evaluate and serve models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

@app.command()
def train(
    config: ConfigOption = None,
    policy: PolicyOption = None,
    name: Annotated[str | None, typer.Option(help="Bundle folder name under models/; "
                                                 "default: escalation-<UTC time>.")] = None,
    messages: Annotated[list[Path] | None, typer.Option(
        "--messages", help="Labelled messages for the sentiment and frustration heads "
        "(labels.sentiment and labels.frustration on customer turns), in place of GoEmotions; "
        "repeat for several files. Needs --conversations.", exists=True, dir_okay=False)] = None,
    conversations: Annotated[list[Path] | None, typer.Option(
        "--conversations", help="Conversations with labels.satisfaction (1 to 5) on customer "
        "turns for the escalation head, and some with labels.overall_satisfaction >= 3 for "
        "the similar cases, in place of USS; repeat for several files. Needs --messages.",
        exists=True, dir_okay=False)] = None,
    verbose: VerboseOption = False,
) -> None:
    """Train the three heads, export, evaluate and register the bundle.

    Without --messages and --conversations the bundled English corpora are used. With them,
    each is split 80/10/10 by conversation id with the configuration's seed.
    """
    _configure_logging(verbose)
    if bool(messages) != bool(conversations):
        raise typer.BadParameter("pass --messages and --conversations together, or neither "
                                 "to train on the bundled corpora")
    result = _train(config, policy, name, messages or [], conversations or [])
    _print_evaluation(result.metrics)
    typer.echo(f"bundle: {result.bundle_dir}")
    typer.echo(f"MLflow run {result.run_id}, registered model version {result.model_version}")


def _train(config_path: Path | None, policy_path: Path | None, name: str | None,
           message_files: list[Path] | None = None,
           conversation_files: list[Path] | None = None) -> Any:
    from pipelines.progress import ProgressReporter
    from pipelines.train.config import load_train_config
    from pipelines.train.data import load_training_data, load_training_files
    from pipelines.train.run import train as run_training
    from serving.rules import load_policy

    config = load_train_config(config_path)
    policy = load_policy(policy_path)
    if message_files and conversation_files:
        data = load_training_files(message_files, conversation_files, seed=config.seed,
                                   dissatisfied_rating=config.escalation.dissatisfied_rating)
    else:
        data = load_training_data(seed=config.seed, splits_name=config.escalation.splits)
    with ProgressReporter() as reporter:
        return run_training(config, data, policy=policy, bundle_name=name,
                            progress=reporter.update)


@app.command()
def evaluate(
    data: Annotated[list[Path] | None, typer.Option(
        "--data", "-d", help="Labelled data to evaluate on: JSON Lines, USS .txt[.gz] or "
        "GoEmotions .tsv[.gz]; repeat for several files. Default: the test split of the "
        "bundle's training data (the bundled corpora, or the files given to escalation train).",
        exists=True, dir_okay=False)] = None,
    bundle: BundleOption = None,
    policy: PolicyOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics of every model "
                                          "and baseline as one JSON object on the last line.")]
    = False,
    verbose: VerboseOption = False,
) -> None:
    """Evaluate a bundle beside its baselines (VADER, rules alone) on labelled data."""
    _configure_logging(verbose)
    from pipelines.evaluate.evaluation import evaluate_escalation, evaluate_messages
    from pipelines.evaluate.vader import VaderBaseline
    from pipelines.train.config import load_train_config
    from pipelines.train.data import training_files_among
    from serving.rules import load_policy
    from serving.scorer import Scorer

    settings = load_train_config(config).escalation
    scorer = Scorer(_resolve_bundle(bundle), policy=load_policy(policy))
    if data:
        conversations = read_data_files(data)
        for path in training_files_among(scorer.manifest.training_data, data):
            typer.echo(f"warning: {path} is a file bundle {scorer.manifest.name} was trained "
                       "on, so these metrics include training conversations and are "
                       "optimistic", err=True)
    else:
        conversations = _default_test_data(scorer, config, settings.dissatisfied_rating,
                                           settings.splits)

    metrics = evaluate_messages(conversations, scorer, VaderBaseline())
    escalation = evaluate_escalation(conversations, scorer, horizon=settings.horizon,
                                     dissatisfied_rating=settings.dissatisfied_rating)
    if escalation:
        metrics["escalation"] = escalation
    if not metrics:
        raise typer.BadParameter("the data carries no sentiment, frustration or satisfaction "
                                 "labels, so there is nothing to evaluate", param_hint="--data")
    metrics["bundle"] = scorer.manifest.name
    if as_json:
        typer.echo(json.dumps(finite_json(metrics), allow_nan=False))
    else:
        _print_evaluation(metrics)


def _default_test_data(scorer: Any, config: Path | None, dissatisfied_rating: int,
                       splits_name: str) -> list[Any]:
    from pipelines.train.config import load_train_config
    from pipelines.train.data import (
        check_bundled_split,
        load_training_data,
        recorded_test_split,
    )

    manifest = scorer.manifest
    recorded = recorded_test_split(manifest.name, manifest.training_data,
                                   dissatisfied_rating=dissatisfied_rating)
    if recorded is not None:
        return recorded
    check_bundled_split(manifest.name, manifest.training_data, splits_name)
    training_data = load_training_data(seed=load_train_config(config).seed,
                                       splits_name=splits_name)
    return training_data.messages["test"] + training_data.conversations["test"]


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write "
                                         "encoder.onnx, encoder.int8.onnx and tokenizer.json "
                                         "to.", file_okay=False)] = Path("var/encoder"),
    verbose: VerboseOption = False,
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX (fp32 and per-channel int8) with a parity check."""
    _configure_logging(verbose)
    from pipelines.export.encoder import export_encoder

    result = export_encoder(output, quantize=True)
    typer.echo(json.dumps(_plain(result), default=_json_default, indent=2))


@app.command()
def score(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT.jsonl", help="Conversations, "
                                               "one JSON object per line.", exists=True,
                                               dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write one score "
                                         "per conversation (JSON Lines).", dir_okay=False)],
    bundle: BundleOption = None,
    policy: PolicyOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Score conversations with onnxruntime and write each decision with its reasons."""
    _configure_logging(verbose)
    check_output_path(output, [("INPUT.jsonl", input_path), ("--bundle", bundle),
                               ("--policy", policy)], force=force, option="--output")
    count = _score_file(input_path, output, bundle, policy)
    typer.echo(f"scored {count} conversations -> {output}")


def _score_file(input_path: Path, output: Path, bundle: Path | None,
                policy: Path | None) -> int:
    from pipelines.atomic import atomic_output
    from pipelines.progress import ProgressReporter
    from serving.rules import load_policy
    from serving.schema import read_conversations
    from serving.scorer import Scorer

    conversations = read_conversations(input_path)
    scorer = Scorer(_resolve_bundle(bundle), policy=load_policy(policy))
    with atomic_output(output) as temporary, temporary.open("w", encoding="utf-8") as handle, \
            ProgressReporter() as reporter:
        for position, result in enumerate(scorer.score_many(conversations), start=1):
            handle.write(json.dumps(result.to_dict(), default=_json_default) + "\n")
            reporter.update("score", position, len(conversations))
    return len(conversations)


@app.command()
def serve(
    bundle: BundleOption = None,
    policy: PolicyOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 8000,
    verbose: VerboseOption = False,
) -> None:
    """Serve the live scoring API (per-turn scoring, routing, handoff packages) over HTTP.

    Needs ESCALATION_API_KEY_HASHES (from `escalation apikey`), or ESCALATION_AUTH_DISABLED=true
    for a local trial. Other settings come from environment variables too (see
    serving/settings.py): DATABASE_URL, REDIS_URL, webhook URLs and limits.
    """
    _configure_logging(verbose)
    import uvicorn

    from serving.api import create_app
    from serving.service import EscalationService
    from serving.settings import load_settings

    settings = load_settings(bundle=bundle, policy=policy)
    if settings.auth_disabled:
        logger.warning("API keys are disabled (ESCALATION_AUTH_DISABLED); do not expose this "
                       "server beyond this machine")
    service = EscalationService(settings)
    logger.info("serving on http://%s:%d", host, port)
    # uvicorn's access log prints raw paths, which carry conversation ids that may be personal
    # data; the app logs each request with its route template instead.
    uvicorn.run(create_app(service), host=host, port=port, log_level="info",
                access_log=False, timeout_graceful_shutdown=15)


@app.command()
def apikey() -> None:
    """Print a new random API key and the sha256 hash to put in ESCALATION_API_KEY_HASHES."""
    from serving.auth import generate_api_key

    key, digest = generate_api_key()
    typer.echo(f"key:  {key}")
    typer.echo(f"hash: {digest}")
    typer.echo("Give the key to the client once; configure only the hash on the server.")


@app.command()
def run(
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The main job: train on the bundled data, evaluate, and score the test conversations."""
    _configure_logging(verbose)
    from pipelines.registry import tracking_uri
    from pipelines.train.data import load_training_data
    from pipelines.train.run import WORK_DIR
    from serving.schema import write_conversations

    started = time.perf_counter()
    result = _train(config, None, None)
    _print_evaluation(result.metrics)

    from pipelines.train.config import load_train_config

    settings = load_train_config(config)
    data = load_training_data(seed=settings.seed, splits_name=settings.escalation.splits)
    test_file = WORK_DIR / "test-conversations.jsonl"
    write_conversations(data.conversations["test"], test_file)
    scores_file = WORK_DIR / "scores" / f"{result.bundle_dir.name}.jsonl"
    count = _score_file(test_file, scores_file, result.bundle_dir, None)

    minutes = (time.perf_counter() - started) / 60
    typer.echo("")
    typer.echo(f"bundle:         {result.bundle_dir}")
    typer.echo(f"MLflow store:   {tracking_uri()} (run {result.run_id}, "
               f"model version {result.model_version})")
    typer.echo(f"scores:         {scores_file} ({count} test conversations)")
    typer.echo(f"finished in {minutes:.1f} min")


def _print_evaluation(metrics: dict[str, Any]) -> None:
    from pipelines.evaluate.table import render_evaluation

    render_evaluation(metrics)


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in dataclasses.asdict(value).items()}
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


# Commands kept in modules of their own. Each module defines `register(app)` and imports its
# heavy libraries inside the command, so `escalation --help` stays fast.
_COMMAND_MODULES: tuple[str, ...] = (
    "pipelines.benchmark.cli",
    "pipelines.backtest.cli",
    "pipelines.report.command",
)


def _register_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_commands()


def main() -> None:
    """Run the CLI, turning this package's errors into one clear line and exit code 2."""
    try:
        app()
    except (EscalationError, FileNotFoundError, FileExistsError, ValueError) as error:
        logger.debug("command failed", exc_info=True)
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
