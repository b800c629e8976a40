"""A copy of a user space's source in its run folder, so saved models outlive the user's file.

A run with ``--space path/to/file.py:Class`` copies the file into the run folder as
``space_source.py`` and names the class in ``architecture.json`` / ``model.json``. Loading a
saved model (``load_model``, ``autonas predict``, export) and resuming the run rebuild the
space from that copy, so editing, moving or deleting the original later changes nothing.
Only the one file is copied: a space file that imports sibling modules of its own still
needs them on the import path.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..run import RunDir
from . import SearchSpace, make_space

SOURCE_FILE = "space_source.py"


def user_space_parts(name: str) -> tuple[Path, str] | None:
    """(file, class name) of a ``file.py:Class`` space name; None for a registered space."""
    if ":" not in str(name):
        return None
    path_text, cls_name = str(name).rsplit(":", 1)
    if not path_text.endswith(".py"):
        return None
    return Path(path_text).expanduser().resolve(), cls_name


def keep_source(run: RunDir, space_name: str) -> dict[str, Any]:
    """Copy a user space's file into ``run`` (once) and return the fields naming the copy."""
    parts = user_space_parts(space_name)
    if parts is None:
        return {}
    path = parts[0]
    if not run.exists(SOURCE_FILE):
        if not path.is_file():
            raise ConfigError(f"space file {path} does not exist (from {space_name!r})")
        run.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, run.file(SOURCE_FILE))
    return source_fields(run, space_name)


def source_fields(run: RunDir, space_name: str) -> dict[str, Any]:
    """``space_source``/``space_class``/``space_source_md5`` for a run holding a copy, else {}."""
    parts = user_space_parts(space_name)
    if parts is None or not run.exists(SOURCE_FILE):
        return {}
    digest = hashlib.md5(run.file(SOURCE_FILE).read_bytes()).hexdigest()
    return {"space_source": SOURCE_FILE, "space_class": parts[1], "space_source_md5": digest}


def space_of_run(run: RunDir, meta: dict[str, Any]) -> SearchSpace:
    """The space a saved run was made with: from its source copy when it has one."""
    options = meta.get("space_options") or {}
    source = meta.get("space_source")
    if source:
        copy = run.file(source)
        if not copy.is_file():
            raise ConfigError(
                f"{run.path} names the space source copy {source} but the file is missing; "
                f"restore it from the original ({meta.get('space')}) or retrain the model."
            )
        return make_space(f"{copy}:{meta['space_class']}", **options)
    return make_space(meta["space"], **options)
