"""Epoch callbacks and console verbosity of ``ImageClassifier.fit``.

Callbacks follow Keras: an object with ``on_epoch_end(epoch, logs)`` or a plain callable
``f(epoch, logs)``; ``logs`` holds ``loss`` and ``accuracy`` (training) and ``val_loss``,
``val_accuracy`` and ``val_auc``. They run after every retraining (and final-fit) epoch,
once the epoch is checkpointed, so an exception from one ends the fit with the best
network trained so far.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigError
from ..run import LOGGER_NAME


class CallbackStop(Exception):
    """A callback raised: the fit stops; ``error`` is what the callback raised."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


def keras_logs(record: dict[str, Any]) -> dict[str, float | None]:
    """A training history record as the ``logs`` dict Keras passes to ``on_epoch_end``."""
    val = record.get("val") or {}
    return {"loss": record.get("train_loss"), "accuracy": record.get("train_accuracy"),
            "val_loss": val.get("loss"), "val_accuracy": val.get("accuracy"),
            "val_auc": val.get("auc")}


def epoch_hook(callbacks: Sequence[Any] | Any | None
               ) -> Callable[[int, dict[str, Any]], None] | None:
    """One ``on_epoch(epoch, record)`` hook for the trainer that calls every callback."""
    if callbacks is None:
        return None
    items = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    calls = []
    for cb in items:
        if hasattr(cb, "on_epoch_end"):
            calls.append(cb.on_epoch_end)
        elif callable(cb):
            calls.append(cb)
        else:
            raise ConfigError(f"callback {cb!r} has no on_epoch_end(epoch, logs) and is not "
                              "callable")
    if not calls:
        return None

    def hook(epoch: int, record: dict[str, Any]) -> None:
        logs = keras_logs(record)
        for call in calls:
            try:
                call(epoch, dict(logs))
            except Exception as exc:
                raise CallbackStop(exc) from exc

    return hook


def verbosity(verbose: int | bool) -> int:
    """0 (silent) or 1 (log lines and progress); True/False as 1/0."""
    level = int(verbose)
    if level not in (0, 1, 2):
        raise ConfigError(f"verbose must be 0 (silent) or 1 (progress), got {verbose!r}")
    return min(level, 1)


@contextmanager
def console_quiet(quiet: bool) -> Iterator[None]:
    """With ``quiet``: no progress bars and only warnings on the console while inside."""
    if not quiet:
        yield
        return
    logger = logging.getLogger(LOGGER_NAME)
    saved = [(h, h.level) for h in logger.handlers if not isinstance(h, logging.FileHandler)]
    previous = os.environ.get("AUTONAS_NO_PROGRESS")
    os.environ["AUTONAS_NO_PROGRESS"] = "1"
    for handler, _ in saved:
        handler.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for handler, level in saved:
            handler.setLevel(level)
        if previous is None:
            os.environ.pop("AUTONAS_NO_PROGRESS", None)
        else:
            os.environ["AUTONAS_NO_PROGRESS"] = previous
