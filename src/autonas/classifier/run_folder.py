"""The ImageClassifier's run folder: where it lives (``directory/project_name``, or a
temporary folder), whether an earlier fit of the same data can continue in it, what
``classifier.json`` records, and how much of the time limit a phase may still use."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..data import ImageData
from ..errors import ConfigError
from ..run import RunDir
from ..training.budget import Deadline

STATE_FILE = "classifier.json"
DEFAULT_PROJECT = "image_classifier"


def open_run(owner: Any, directory: str | Path | None, project_name: Any, overwrite: bool,
             data: ImageData) -> tuple[RunDir, bool]:
    """(run folder, whether it continues an earlier fit of the same data). Without a
    ``directory``, a temporary folder deleted with ``owner`` (and on its next fit)."""
    cleanup = owner.__dict__.pop("_cleanup", None)
    if cleanup is not None:
        cleanup()  # a refit replaces the previous temporary run folder
    if directory is None:
        path = Path(tempfile.mkdtemp(prefix="autonas-classifier-"))
        owner._cleanup = weakref.finalize(owner, shutil.rmtree, str(path), True)
        return RunDir(path), False
    path = Path(directory).expanduser() / project_folder(project_name)
    if path.exists() and any(path.iterdir()):
        is_run = any((path / f).exists() for f in ("config.yaml", "status.json", STATE_FILE))
        if not is_run:
            raise ConfigError(f"directory {path} holds files that are not an autonas run; "
                              "choose an empty or new directory")
        if overwrite:
            shutil.rmtree(path)
        else:
            state = json.loads((path / STATE_FILE).read_text()) if (
                path / STATE_FILE).is_file() else {}
            if state.get("fingerprint") != fingerprint(data):
                raise ConfigError(
                    f"directory {path} holds a fit of other data; pass overwrite=True to "
                    "replace it, or another directory")
            return RunDir(path), True
    path.mkdir(parents=True, exist_ok=True)
    return RunDir(path), False


def saved_folder(path: str | Path) -> Path:
    """The folder ``load`` reads: ``path`` itself, or the default project inside a fit's
    ``directory`` (AutoKeras' layout)."""
    path = Path(path)
    if not (path / STATE_FILE).is_file() and (path / DEFAULT_PROJECT / STATE_FILE).is_file():
        return path / DEFAULT_PROJECT
    return path


def project_folder(name: Any) -> str:
    """The run folder's name under ``directory``: one plain folder name."""
    text = str(name or "").strip()
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise ConfigError(f"project_name must be a plain folder name, got {name!r}")
    return text


def finished(run: RunDir) -> bool:
    """Whether the folder holds a whole fit (an ensemble cut short resumes)."""
    return run.exists("model.pt") and run.exists("model.json") and \
        run.phase_state("retrain") == "done" and run.phase_state("ensemble") in (None, "done")


def seconds_left(deadline: Deadline) -> float | None:
    """What a phase started now may use; an error when (almost) nothing is left."""
    if deadline.at is None:
        return None
    left = deadline.remaining()
    if left <= 1.0:
        raise ConfigError("the time limit is used up before the search could start; give "
                          "fit a larger time_limit")
    return left


def fingerprint(data: ImageData) -> str:
    h = hashlib.sha1()
    for t in (data.train_x, data.train_y, data.val_x, data.val_y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    h.update(json.dumps(data.class_names).encode())
    return h.hexdigest()


def classes_json(classes: np.ndarray) -> dict[str, Any]:
    return {"values": classes.tolist(), "dtype": classes.dtype.str}


def classes_from_json(d: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(d["dtype"])
    return np.array(d["values"], dtype=object if dtype.kind == "O" else dtype)


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in params.items()}
