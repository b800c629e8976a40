"""Console output: progress bars with ETA per phase, log lines, the end-of-run summary."""

from __future__ import annotations

import logging
import os
from types import TracebackType

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .run import LOGGER_NAME

console = Console(stderr=True)


def progress_enabled() -> bool:
    return console.is_terminal and not os.environ.get("AUTONAS_NO_PROGRESS")


def setup_console_logging(verbose: bool = False) -> None:
    """Log records go to the console (and, per run, to run.log via ``RunDir.attach_log``)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=console, show_path=False, show_time=False,
                              rich_tracebacks=False, markup=False)
        handler.setLevel(logging.DEBUG if verbose else logging.INFO)
        handler.addFilter(lambda r: not (r.name.endswith(".progress") and progress_enabled()))
        logger.addHandler(handler)
    logger.propagate = False


class PhaseProgress:
    """A progress bar for one phase (search, retrain, ...), silent when not on a terminal."""

    def __init__(self, description: str, total: int | None, enabled: bool = True) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled and progress_enabled():
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total, info="")

    def __enter__(self) -> PhaseProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            kwargs = {} if info is None else {"info": info}
            self._progress.update(self._task, advance=n, **kwargs)

    def update(self, *, completed: int | None = None, total: int | None = None,
               info: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            kwargs: dict = {}
            if completed is not None:
                kwargs["completed"] = completed
            if total is not None:
                kwargs["total"] = total
            if info is not None:
                kwargs["info"] = info
            self._progress.update(self._task, **kwargs)
