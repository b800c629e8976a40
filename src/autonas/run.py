"""The run directory: every phase writes through it, and everything can be resumed or
reported from it alone.

Files are written atomically (temp file + rename) so a run killed at any moment leaves
either the old or the new version of each file, never half of one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import ConfigError

LOGGER_NAME = "autonas"
_PACKAGES = ("autonas", "torch", "torchvision", "numpy", "scikit-learn", "optuna", "medmnist")


def jsonable(obj: Any) -> Any:
    """Plain JSON types only: NaN/inf become None, tensors and numpy values become lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _current_umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Any, mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file 0600; give it the mode open() would (0666 minus the umask),
        # like every other file of the run.
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class RunDir:
    """A folder holding one run: config, environment, log, phase states, results."""

    HEARTBEAT_EVERY = 0.5
    """Seconds between heartbeats at most (each rewrites status.json)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._running: str | None = None  # the phase this process runs, for heartbeats
        self._last_beat = -math.inf

    # -- creation -------------------------------------------------------------------
    @classmethod
    def create(cls, out: str | Path | None, name: str, root: str | Path = "runs") -> RunDir:
        """A new run folder: ``out`` if given (must be empty or absent), else ``root/name-time``."""
        if out is not None:
            path = Path(out)
            if path.exists() and any(path.iterdir()):
                raise ConfigError(
                    f"output folder {path} already holds files; pass --resume {path} to continue "
                    "that run, or choose another --out"
                )
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = Path(root) / f"{name}-{stamp}"
            n = 1
            while path.exists():
                n += 1
                path = Path(root) / f"{name}-{stamp}-{n}"
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        p = Path(path)
        if not (p / "config.yaml").is_file():
            raise ConfigError(
                f"{p} is not a run folder (no config.yaml in it); pass the folder an "
                "`autonas run` or `autonas search` wrote"
            )
        return cls(p)

    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def exists(self, *parts: str) -> bool:
        return self.file(*parts).exists()

    # -- plain data -----------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        path = self.file(name)
        text = json.dumps(jsonable(obj), indent=1) + "\n"
        _atomic_write(path, lambda f: f.write(text))
        return path

    def read_json(self, name: str) -> Any:
        path = self.file(name)
        if not path.is_file():
            raise ConfigError(f"{path} is missing: has this phase of the run finished?")
        return json.loads(path.read_text())

    def append_jsonl(self, name: str, obj: Any) -> None:
        path = self.file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(jsonable(obj)) + "\n")
        self.heartbeat()

    def read_jsonl(self, name: str) -> list[Any]:
        path = self.file(name)
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything before it is good
        return rows

    def epoch_seconds(self, prefix: str = "retrain") -> float | None:
        """The median time of a training's complete epochs (None when none was timed)."""
        times = sorted(r["seconds"] for r in self.read_jsonl(f"{prefix}/history.jsonl")
                       if r.get("complete", True) and r.get("seconds"))
        return times[len(times) // 2] if times else None

    def epoch_val(self, epoch: int, prefix: str = "retrain") -> dict[str, Any] | None:
        """The validation metrics a training recorded after ``epoch`` (None: no such row)."""
        history = self.read_jsonl(f"{prefix}/history.jsonl")
        return history[epoch]["val"] if 0 <= epoch < len(history) else None

    def truncate_jsonl(self, name: str, keep: int) -> None:
        """Keep the first ``keep`` rows (drop rows of epochs a resume will redo)."""
        rows = self.read_jsonl(name)[:keep]
        text = "".join(json.dumps(r) + "\n" for r in rows)
        _atomic_write(self.file(name), lambda f: f.write(text))

    def write_yaml(self, name: str, obj: Any) -> Path:
        path = self.file(name)
        text = yaml.safe_dump(jsonable(obj), sort_keys=False)
        _atomic_write(path, lambda f: f.write(text))
        return path

    def read_yaml(self, name: str) -> Any:
        return yaml.safe_load(self.file(name).read_text())

    # -- tensors --------------------------------------------------------------------
    def save_state(self, name: str, state: dict) -> None:
        _atomic_write(self.file(name), lambda f: torch.save(state, f), mode="wb")
        self.heartbeat(force=True)

    def load_state(self, name: str) -> dict | None:
        path = self.file(name)
        if not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    # -- status ---------------------------------------------------------------------
    def status(self) -> dict:
        return self.read_json("status.json") if self.exists("status.json") else {}

    def set_phase(self, phase: str, state: str, **fields: Any) -> None:
        status = self.status()
        entry = status.setdefault(phase, {})
        entry.update(fields, state=state, updated=datetime.now().isoformat(timespec="seconds"))
        if state == "running":
            entry["heartbeat"] = time.time()
            self._running, self._last_beat = phase, time.monotonic()
        elif self._running == phase:
            self._running = None
        self.write_json("status.json", status)

    def heartbeat(self, force: bool = False) -> None:
        """Stamp the running phase's ``heartbeat`` (wall time) in status.json: after a kill,
        a resume bills the phase up to its last heartbeat, the last moment it surely ran.
        Called at every checkpoint and history row; at most every ``HEARTBEAT_EVERY`` s
        unless ``force``."""
        if self._running is None:
            return
        now = time.monotonic()
        if not force and now - self._last_beat < self.HEARTBEAT_EVERY:
            return
        status = self.status()
        entry = status.get(self._running)
        if entry is None or entry.get("state") != "running":
            return
        entry["heartbeat"] = time.time()
        self._last_beat = now
        self.write_json("status.json", status)

    def phase_state(self, phase: str) -> str | None:
        return self.status().get(phase, {}).get("state")

    # -- environment and log ----------------------------------------------------------
    def write_environment(self, seed: int, device: torch.device) -> None:
        env = {
            "seed": seed,
            "versions": package_versions(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": str(device),
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "command": sys.argv,
            "started": datetime.now().isoformat(timespec="seconds"),
        }
        history = self.read_json("environment.json").get("sessions", []) if self.exists(
            "environment.json") else []
        env["sessions"] = [*history, {"started": env["started"], "command": sys.argv}]
        self.write_json("environment.json", env)

    def attach_log(self) -> logging.Handler:
        """Send the package's log records to ``run.log`` (appending across resumes)."""
        handler = logging.FileHandler(self.file("run.log"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger(LOGGER_NAME)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        return handler


def detach_log(handler: logging.Handler) -> None:
    logging.getLogger(LOGGER_NAME).removeHandler(handler)
    handler.close()


def get_logger(child: str | None = None) -> logging.Logger:
    """The package logger; the child ``progress`` carries per-epoch lines, which the console
    hides while progress bars show the same."""
    return logging.getLogger(LOGGER_NAME if child is None else f"{LOGGER_NAME}.{child}")
