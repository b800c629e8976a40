"""The one way a phase writes to its run folder: rows, checkpoints and progress.

Search strategies and the trial runner hand what they produce to a ``Recorder`` the
pipeline owns instead of opening files or drawing progress bars themselves. A recorder
without a run folder (``Recorder(None)``) writes nothing: that is what a worker process
or a non-zero rank gets, so "only the coordinator writes" needs no test of who is who.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .run import RunDir, jsonable
from .ui import PhaseProgress


class Recorder:
    """Wraps a ``RunDir`` (or nothing, for processes that must not write)."""

    def __init__(self, run: RunDir | None, *, progress: bool = True) -> None:
        self.run = run
        self.show_progress = progress and run is not None
        self._synced: dict[tuple[str, str], set[Any]] = {}

    @property
    def writes(self) -> bool:
        return self.run is not None

    def record(self, kind: str, row: dict[str, Any]) -> None:
        """Append ``row`` to ``<kind>.jsonl`` (e.g. ``search/trials``)."""
        if self.run is not None:
            self.run.append_jsonl(f"{kind}.jsonl", jsonable(row))

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """The rows recorded under ``kind`` (a cut last line, from a kill, is dropped)."""
        if self.run is None:
            return []
        rows = self.run.read_jsonl(f"{kind}.jsonl")
        self.run.truncate_jsonl(f"{kind}.jsonl", len(rows))
        return rows

    def sync(self, kind: str, rows: Iterable[dict[str, Any]], key: str = "number"
             ) -> list[dict[str, Any]]:
        """Append the rows whose ``key`` is not recorded yet; returns the new ones."""
        if (kind, key) not in self._synced:  # read the file once, then remember
            self._synced[(kind, key)] = {r.get(key) for r in self.rows(kind)}
        known = self._synced[(kind, key)]
        new = [r for r in rows if r.get(key) not in known]
        for row in new:
            self.record(kind, row)
            known.add(row.get(key))
        return new

    def checkpoint(self, name: str, state: Any) -> None:
        """Write ``state`` atomically: a dict of tensors as ``name`` (``.pt``), anything else
        as JSON."""
        if self.run is None:
            return
        if name.endswith(".pt"):
            self.run.save_state(name, state)
        else:
            self.run.write_json(name, state)

    def progress(self, phase: str, total: int | None
                 ) -> AbstractContextManager[PhaseProgress | None]:
        """A progress bar for ``phase`` (a context manager yielding None where nothing is
        drawn)."""
        if not self.show_progress:
            return nullcontext(None)
        return PhaseProgress(phase, total=total)
