"""The one seam through which a phase writes its records and checkpoints.

Strategies and the training loop hand rows (``record``) and checkpoints (``checkpoint``,
RNG state included) to a recorder the pipeline owns; they never write run files
themselves. In a data-parallel run only rank 0's recorder writes (``is_writer``); every
rank reads, so a resume restores all of them from the same files.

A kind such as ``"search/history"`` is the JSON-lines file ``search/history.jsonl``; a
checkpoint name such as ``"search/state"`` is ``search/state.pt`` in the run folder.
"""

from __future__ import annotations

from typing import Any

from .run import RunDir
from .ui import PhaseProgress


class Recorder:
    """Writes through a :class:`RunDir` when ``is_writer``; reads in every process."""

    def __init__(self, run: RunDir, is_writer: bool = True) -> None:
        self.run = run
        self.is_writer = is_writer

    @staticmethod
    def _rows_file(kind: str) -> str:
        return f"{kind}.jsonl"

    @staticmethod
    def _state_file(name: str) -> str:
        return name if name.endswith(".pt") else f"{name}.pt"

    # -- rows --------------------------------------------------------------------------
    def record(self, kind: str, row: dict[str, Any]) -> None:
        """Append one row (an epoch, a trial) to the records of ``kind``."""
        if self.is_writer:
            self.run.append_jsonl(self._rows_file(kind), row)

    def rows(self, kind: str) -> list[dict[str, Any]]:
        return self.run.read_jsonl(self._rows_file(kind))

    def keep_rows(self, kind: str, n: int) -> list[dict[str, Any]]:
        """The first ``n`` rows of ``kind``; the later ones (of work a resume redoes) are
        dropped from the file."""
        rows = self.rows(kind)[:n]
        if self.is_writer:
            self.run.truncate_jsonl(self._rows_file(kind), len(rows))
        return rows

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint(self, name: str, state: dict[str, Any]) -> None:
        """Save ``state`` atomically (a kill leaves the previous checkpoint whole)."""
        if self.is_writer:
            self.run.save_state(self._state_file(name), state)

    def load_checkpoint(self, name: str) -> dict[str, Any] | None:
        """The last checkpoint ``name`` (every rank loads it), or None."""
        return self.run.load_state(self._state_file(name))

    # -- results and display -----------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        if self.is_writer:
            self.run.write_json(name, obj)

    def progress(self, description: str, total: int | None,
                 enabled: bool = True) -> PhaseProgress:
        """A progress bar, drawn by the writer only."""
        return PhaseProgress(description, total=total, enabled=enabled and self.is_writer)

    @staticmethod
    def progress_for(recorder: Recorder | None, description: str, total: int | None,
                     enabled: bool = True) -> PhaseProgress:
        """``recorder``'s progress bar; without one, a bar drawn by rank 0 only."""
        if recorder is not None:
            return recorder.progress(description, total, enabled)
        from .training.distributed import is_writer

        return PhaseProgress(description, total=total, enabled=enabled and is_writer())


def as_recorder(run: RunDir | Recorder | None) -> Recorder | None:
    """A writing recorder for a bare run folder; a recorder (or None) as it is."""
    if run is None or isinstance(run, Recorder):
        return run
    return Recorder(run)
