"""Progress bars for long steps, drawn with rich on a terminal and logged otherwise."""

from __future__ import annotations

import logging
import sys
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

logger = logging.getLogger(__name__)

# Without a terminal (CI, a log file) a bar is noise; log every tenth of the way instead.
LOG_STEPS = 10


class ProgressReporter:
    """Show one progress bar per named step; `update(step, done, total)` moves it."""

    def __init__(self) -> None:
        self._interactive = sys.stderr.isatty()
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._logged: dict[str, int] = {}

    def __enter__(self) -> ProgressReporter:
        if self._interactive:
            self._progress = Progress(
                TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: str, done: int, total: int) -> None:
        """Record that `done` of `total` items of `step` are finished."""
        if self._progress is not None:
            if step not in self._tasks:
                self._tasks[step] = self._progress.add_task(step, total=total)
            self._progress.update(self._tasks[step], completed=done, total=total)
            return
        stage = (done * LOG_STEPS) // max(total, 1)
        if stage > self._logged.get(step, -1):
            self._logged[step] = stage
            logger.info("%s: %d/%d", step, done, total)
