"""The `escalation benchmark` command group; each benchmark registers its own subcommand."""

from __future__ import annotations

import importlib

import typer

benchmark_app = typer.Typer(
    name="benchmark",
    help="Measure the product's models on public benchmarks with the authors' metrics.",
    no_args_is_help=True,
)

# One module per benchmark; each defines `register(benchmark_app)`.
_SUBCOMMAND_MODULES: tuple[str, ...] = (
    "pipelines.benchmark.mhch",
    "pipelines.benchmark.sentiment", "pipelines.benchmark.frustration",
    "pipelines.benchmark.uss",
)


def register(app: typer.Typer) -> None:
    """Add `escalation benchmark ...` and every benchmark subcommand to `app`."""
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(name).register(benchmark_app)
    app.add_typer(benchmark_app, name="benchmark")
