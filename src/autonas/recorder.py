"""The one seam through which a phase writes its records and checkpoints.

Strategies and the training loop hand rows (``record``) and checkpoints (``checkpoint``,
RNG state included) to a recorder the pipeline owns; they never write run files
themselves. In a data-parallel run only rank 0's recorder writes (``is_writer``); every
rank reads, so a resume restores all of them from the same files.

A kind such as ``"search/history"`` is the JSON-lines file ``search/history.jsonl``; a
checkpoint named ``*.pt`` is saved with torch.save, any other as JSON.
"""

from __future__ import annotations

from typing import Any

from .run import RunDir, jsonable
from .ui import PhaseProgress


class Recorder:
    """Writes through a :class:`RunDir` when it is the writer; reads in every process.

    ``Recorder(None)`` has no folder: it writes and reads nothing (a process that only
    computes). ``Recorder(run, is_writer=False)`` reads ``run`` but never writes it (a
    data-parallel rank other than 0, which must resume from rank 0's checkpoints).
    """

    def __init__(self, run: RunDir | None, is_writer: bool = True, *,
                 progress: bool = True) -> None:
        self.run = run
        self.is_writer = is_writer and run is not None
        self.show_progress = progress and self.is_writer
        self._synced: dict[tuple[str, str], set[Any]] = {}

    @property
    def writes(self) -> bool:
        return self.is_writer

    # -- rows --------------------------------------------------------------------------
    def record(self, kind: str, row: dict[str, Any]) -> None:
        """Append one row (an epoch, a trial) to ``<kind>.jsonl``."""
        if self.is_writer:
            self.run.append_jsonl(f"{kind}.jsonl", row)

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """The rows of ``kind`` (a line cut by a kill is left out)."""
        return [] if self.run is None else self.run.read_jsonl(f"{kind}.jsonl")

    def sync(self, kind: str, rows: list[dict[str, Any]], key: str = "number"
             ) -> list[dict[str, Any]]:
        """Append the rows whose ``key`` is not recorded yet (e.g. trials finished by
        other workers, read from the study); returns the new ones. The file is read once,
        then the recorded keys are remembered."""
        if (kind, key) not in self._synced:
            self._synced[(kind, key)] = {r.get(key) for r in self.rows(kind)}
        known = self._synced[(kind, key)]
        new = [r for r in rows if r.get(key) not in known]
        for row in new:
            self.record(kind, jsonable(row))
            known.add(row.get(key))
        return new

    def keep_rows(self, kind: str, n: int) -> list[dict[str, Any]]:
        """The first ``n`` rows of ``kind``; the later ones (of work a resume redoes) are
        dropped from the file."""
        rows = self.rows(kind)[:n]
        if self.is_writer:
            self.run.truncate_jsonl(f"{kind}.jsonl", len(rows))
        return rows

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint(self, name: str, state: Any) -> None:
        """Save ``state`` atomically (a kill leaves the previous checkpoint whole): tensors
        with torch.save when ``name`` ends in ``.pt``, anything else as JSON."""
        if not self.is_writer:
            return
        if name.endswith(".pt"):
            self.run.save_state(name, state)
        else:
            self.run.write_json(name, state)

    def load_checkpoint(self, name: str) -> Any:
        """The last checkpoint ``name`` (every rank loads it), or None."""
        if self.run is None:
            return None
        if name.endswith(".pt"):
            return self.run.load_state(name)
        return self.run.read_json(name) if self.run.exists(name) else None

    # -- results and display -----------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        if self.is_writer:
            self.run.write_json(name, obj)

    def progress(self, description: str, total: int | None,
                 enabled: bool = True) -> PhaseProgress:
        """A progress bar, drawn by the writer only (elsewhere one that draws nothing)."""
        return PhaseProgress(description, total=total, enabled=enabled and self.show_progress)

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
