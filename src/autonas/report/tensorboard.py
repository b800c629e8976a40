"""Optional TensorBoard scalars, mirrored from the run folder's history files.

The training loops stay untouched: the JSONL histories they already write are the single
source of truth, and a background thread copies each new epoch (and trial) into event files
under ``RUN_DIR/tensorboard/`` while the run goes on, so TensorBoard shows a live view. The
event files are rebuilt from the histories when a run starts or resumes, so a resumed run
never shows the epochs it redid twice.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..run import get_logger
from .load import RunReader

TB_DIR = "tensorboard"
SOURCES = {  # history file -> scalar prefix, step key
    "search/history.jsonl": ("search", "epoch"),
    "retrain/history.jsonl": ("retrain", "epoch"),
    "search/trials.jsonl": ("trials", "number"),
}
SKIP_KEYS = frozenset({"epoch", "number", "arch", "confusion_matrix", "per_class", "n", "steps",
                       "complete", "best", "alphas_frozen"})


def require_tensorboard() -> None:
    """ConfigError with the fix when the optional ``tensorboard`` package is missing."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--tensorboard needs the tensorboard package: pip install 'autonas[tensorboard]' "
            "(or pip install tensorboard), or run without --tensorboard") from None


def scalars(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every number of a history row as (tag, value); nested dicts give ``a/b`` tags."""
    for key, value in row.items():
        if key in SKIP_KEYS:
            continue
        tag = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            yield tag, float(value)
        elif isinstance(value, Mapping):
            yield from scalars(value, tag)


class TensorBoardMirror:
    """Copies new history rows of a run folder into TensorBoard event files.

    ``sync()`` may be called at any time; ``start()`` calls it every ``interval`` seconds
    from a daemon thread until ``close()``, which syncs a last time.
    """

    def __init__(self, run_dir: str | Path, interval: float = 5.0) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.interval = interval
        log_dir = self.run_dir / TB_DIR
        shutil.rmtree(log_dir, ignore_errors=True)  # rebuilt from the histories
        self._writer = SummaryWriter(log_dir=str(log_dir))
        self._done: dict[str, set[int]] = {name: set() for name in SOURCES}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def log_dir(self) -> Path:
        return self.run_dir / TB_DIR

    def sync(self) -> int:
        """Write the rows not written yet; returns how many scalars were added."""
        added = 0
        with self._lock:
            reader = RunReader(self.run_dir, [])
            for name, (prefix, step_key) in SOURCES.items():
                for i, row in enumerate(reader.jsonl(name)):
                    step = row.get(step_key, i)
                    if not isinstance(step, int) or step in self._done[name]:
                        continue
                    for tag, value in scalars(row, prefix):
                        self._writer.add_scalar(tag, value, global_step=step)
                        added += 1
                    self._done[name].add(step)
            self._writer.flush()
        return added

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception as exc:  # never let the mirror disturb the run
                get_logger().warning("tensorboard: %s", exc)

    def start(self) -> TensorBoardMirror:
        self.sync()
        self._thread = threading.Thread(target=self._loop, name="autonas-tensorboard",
                                        daemon=True)
        self._thread.start()
        get_logger().info("tensorboard scalars: tensorboard --logdir %s", self.log_dir)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.sync()
        except Exception as exc:  # closing runs in the run's `finally`: never mask its error
            get_logger().warning("tensorboard: %s", exc)
        finally:
            self._writer.close()


def start_mirror(run_dir: str | Path, interval: float = 5.0) -> TensorBoardMirror:
    return TensorBoardMirror(run_dir, interval).start()
