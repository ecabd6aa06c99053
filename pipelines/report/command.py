"""The `escalation report` command: write a self-contained HTML report of a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli_common import BundleOption, ForceOption, PolicyOption, VerboseOption


def report(
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="HTML file to write; its folder is created if missing. An "
        "existing file is overwritten only with --force.")],
    data: Annotated[list[Path] | None, typer.Option(
        "--data", "-d", help="Labelled data to report on: JSON Lines, USS .txt[.gz] or "
        "GoEmotions .tsv[.gz]; repeat for several files. Default: the test splits the "
        "bundle was trained beside.", exists=True, dir_okay=False)] = None,
    bundle: BundleOption = None,
    policy: PolicyOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Write an HTML report of a bundle beside its baselines: curves, thresholds, lead times.

    The page opens offline: the charts are inline SVG images and it loads no script.
    """
    from pipelines.cli_common import (
        check_output_path,
        configure_logging,
        read_data_files,
        resolve_bundle,
    )
    from pipelines.progress import ProgressReporter
    from pipelines.report.writer import check_writable, write_report
    from serving.bundle import load_manifest
    from serving.rules import DEFAULT_POLICY_PATH, load_policy

    configure_logging(verbose)
    # The cheap checks run first, so a typo fails before minutes of loading and scoring.
    check_writable(out)
    bundle_dir = resolve_bundle(bundle)
    check_output_path(out, [*(("--data", path) for path in data or []), ("--bundle", bundle_dir),
                            ("--policy" if policy else "packaged policy",
                             policy or DEFAULT_POLICY_PATH)], force=force)
    load_manifest(bundle_dir, verify=False)
    loaded_policy = load_policy(policy)

    conversations = None
    description = None
    if data:
        conversations = read_data_files(data)
        description = ", ".join(str(path) for path in data)
    with ProgressReporter() as reporter:
        path = write_report(bundle_dir, out, conversations, policy=loaded_policy,
                            data_description=description, progress=reporter.update)
    size = path.stat().st_size
    typer.echo(f"report of {bundle_dir.name} -> {path} ({size / 1024:.0f} KiB)")


def register(app: typer.Typer) -> None:
    """Add `escalation report` to the command line."""
    app.command(name="report")(report)
