"""One wall-clock budget shared by every phase of a run.

A phase asks ``fits(seconds)`` before each unit of work (a step, an evaluation) with the
duration it expects from the units it has timed, so it stops *before* overrunning rather
than after: the run as a whole ends within a few percent of its budget.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

from ..errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_IMPORTED = time.monotonic()


def process_start() -> float:
    """The monotonic time at which this process started, so a command's budget includes the
    interpreter start and the imports before any autonas code ran.

    Read from ``/proc/self/stat`` (start time in clock ticks since boot); where that is not
    available, the time this module was imported.
    """
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(after_name[19])  # field 22 of proc(5), counted from the state field (3)
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED
    now = time.monotonic()
    return now - age if 0.0 <= age <= now - _IMPORTED + 3600.0 else _IMPORTED


def parse_duration(text: str | float | int | None) -> float | None:
    """'90', '90s', '10m', '1h30m', '1.5h' -> seconds; None or 'none' -> no limit."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = text.strip().lower().replace(" ", "")
        if s in ("", "none", "inf", "unlimited"):
            return None
        if re.fullmatch(r"\d+(\.\d+)?", s):
            seconds = float(s)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", s)
            if not parts or "".join(n + u for n, u in parts) != s:
                raise ConfigError(
                    f"cannot read duration {text!r}: use seconds or units like 90s, 10m, 1h30m"
                )
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0 or math.isinf(seconds):
        raise ConfigError(f"a duration must be a positive number of seconds, got {text!r}")
    return seconds


class Deadline:
    """A point in time (monotonic clock) before which work must end; None = no limit."""

    def __init__(self, at: float | None) -> None:
        self.at = at

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(None if seconds is None else time.monotonic() + seconds)

    def remaining(self) -> float:
        return math.inf if self.at is None else self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def fits(self, seconds: float) -> bool:
        """Whether work expected to take ``seconds`` can still finish before the deadline."""
        return self.remaining() >= seconds

    def earlier(self, other: Deadline) -> Deadline:
        if self.at is None:
            return other
        if other.at is None:
            return self
        return Deadline(min(self.at, other.at))


class Budget:
    """The run's budget, split into phase deadlines.

    ``seconds`` is the time this process may spend; ``fractions`` say how much of the
    budget each phase may use at most (the search's unused time flows to retraining).
    """

    def __init__(self, seconds: float | None, start: float | None = None) -> None:
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start
        self.deadline = Deadline(None if seconds is None else self.start + seconds)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.deadline.remaining()

    def until_fraction(self, fraction: float) -> Deadline:
        """Deadline at ``fraction`` of the budget from the run's start."""
        if self.seconds is None:
            return Deadline(None)
        return Deadline(self.start + fraction * self.seconds)

    def minus(self, seconds: float) -> Deadline:
        """The overall deadline moved earlier by ``seconds`` (a reserve for later phases)."""
        if self.deadline.at is None:
            return Deadline(None)
        return Deadline(self.deadline.at - seconds)


class StepTimer:
    """Running estimate of how long the next unit of work will take.

    Uses the max of the last duration and a moving average, so one slow step (a page
    fault, another process) makes the estimate cautious at once.
    """

    def __init__(self, initial: float = 0.0) -> None:
        self.mean = initial
        self.last = initial
        self.count = 0
        self._t0: float | None = None

    @property
    def measured(self) -> bool:
        """Whether the estimate comes from a timed unit (not only from ``initial``/``guess``)."""
        return self.count > 0

    def guess(self, seconds: float) -> None:
        """Set the estimate before any unit is timed (e.g. from a probe of one forward pass)."""
        if self.count == 0:
            self.mean = self.last = seconds

    def __enter__(self) -> StepTimer:
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._t0 is not None
        self.add(time.monotonic() - self._t0)

    def add(self, seconds: float) -> None:
        self.last = seconds
        self.mean = seconds if self.count == 0 else 0.7 * self.mean + 0.3 * seconds
        self.count += 1

    @property
    def estimate(self) -> float:
        return max(self.mean, self.last)
