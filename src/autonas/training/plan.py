"""How many epochs a budgeted training plans for, and when that plan changes.

The cosine schedule needs its length up front. With no fixed epoch count the plan is made
from the first timed epochs (the first one pays warm-up costs) and then kept: a resumed run
keeps it too, so the schedule keeps its length. The plan shrinks only when the time left
cannot hold it, e.g. because the machine got slower (other processes), and every such
change is said in plain words.
"""

from __future__ import annotations

import math
from typing import Any

PLANNING_EPOCHS = 3
"""The plan is made over the first epochs of a fresh training, then only shrunk."""
SLOWER = 1.2
"""Epochs this many times slower than at the start are called a slower machine."""
MACHINE_SLOWER = 2.0
"""A reference workload this many times slower than at the run's start is worth a warning
(a short timing on a busy machine varies; smaller ratios would be noise)."""


class EpochPlan:
    """The number of epochs the cosine schedule runs over (``planned``) and its history."""

    def __init__(self, planned: int, *, fixed: bool, max_epochs: int) -> None:
        self.planned = planned
        self.fixed = fixed
        self.max_epochs = max_epochs
        self.first_plan: int | None = None
        self.baseline: float | None = None  # steady seconds per epoch at the start
        self.replans: list[dict[str, Any]] = []
        self._times: list[float] = []  # seconds of this session's full epochs

    # -- checkpoints ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"planned_epochs": self.planned, "first_plan": self.first_plan,
                "baseline_epoch_seconds": self.baseline, "replans": list(self.replans)}

    def restore(self, state: dict[str, Any]) -> None:
        self.planned = int(state["planned_epochs"])
        self.first_plan = state.get("first_plan")
        self.baseline = state.get("baseline_epoch_seconds")
        self.replans = list(state.get("replans") or [])

    # -- planning ------------------------------------------------------------------------
    def observe(self, epoch: int, seconds: float, remaining: float, *,
                resumed: bool) -> str | None:
        """Record a finished epoch (0-based ``epoch``, its wall ``seconds``); returns a
        message when the plan shrank because the epochs got slower."""
        self._times.append(seconds)
        if not resumed and epoch < PLANNING_EPOCHS:
            steady = self._times[1:] or self._times
            self.baseline = sum(steady) / len(steady)
            if not self.fixed and math.isfinite(remaining):
                fits = int(remaining // max(self.baseline, 1e-6))
                self.planned = max(epoch + 1, min(self.max_epochs, epoch + 1 + fits))
                self.first_plan = self.planned
            return None
        if self.fixed or not math.isfinite(remaining) or len(self._times) < 2:
            return None
        recent = min(self._times[-2:])  # two slow epochs in a row, not one hiccup
        left = self.planned - (epoch + 1)
        if left <= 0 or left * recent <= remaining + recent:
            return None  # at most one epoch short: the budget check ends the last one
        new = max(epoch + 1, epoch + 1 + int(remaining // max(recent, 1e-6)))
        if new >= self.planned:
            return None
        return self._replan(epoch, new, self._ratio(recent))

    def fit_left(self, start_epoch: int, remaining: float) -> str | None:
        """On resume: keep the plan if the time left holds it, else shrink it (a message)."""
        if self.fixed or not math.isfinite(remaining) or not self.baseline:
            return None
        fits = int(remaining // self.baseline)
        if start_epoch + fits >= self.planned:
            return None
        new = start_epoch + max(1, fits)
        message = (f"the budget left ({remaining:.0f} s) cannot hold the "
                   f"{self.planned - start_epoch} epochs left of the plan "
                   f"({self.baseline:.1f} s each); re-planned from {self.planned} to {new} "
                   "epochs")
        self.replans.append({"epoch": start_epoch, "from": self.planned, "to": new,
                             "slowdown": None, "reason": "resume"})
        self.planned = new
        return message

    def slowdown(self) -> float | None:
        """Recent seconds per epoch over those at the start (None until measurable)."""
        if self.baseline is None or len(self._times) < 2:
            return None
        return self._ratio(min(self._times[-2:]))

    def _ratio(self, seconds: float) -> float | None:
        return None if not self.baseline else seconds / self.baseline

    def _replan(self, epoch: int, new: int, ratio: float | None) -> str:
        slower = (f"the machine ran {ratio:.1f}x slower than at the start"
                  if ratio and ratio >= SLOWER else "epochs took longer than planned")
        message = (f"planned {self.planned} epochs, got {new}: {slower}; re-planned the "
                   "schedule to end inside the budget")
        self.replans.append({"epoch": epoch, "from": self.planned, "to": new,
                             "slowdown": ratio, "reason": "slower"})
        self.planned = new
        return message
