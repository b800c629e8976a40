"""Read a run folder into one plain object, tolerating any missing or damaged piece.

A report must work for finished, interrupted and partial runs alike, so nothing here
raises for a missing file: the field stays empty and the report says "not available".
Files that exist but cannot be parsed are listed in ``RunData.problems``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import ConfigError

CELL_TYPES = ("normal", "reduce")
KNOWN_FILES = ("config.yaml", "status.json", "data.json", "environment.json", "metrics.json",
               "search/history.jsonl", "search/trials.jsonl", "architecture.json")


@dataclass
class RunData:
    """Everything a report shows, read from one run folder (``None`` / empty when absent)."""

    path: Path
    config: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    status: dict[str, Any] = field(default_factory=dict)
    search_history: list[dict[str, Any]] = field(default_factory=list)
    alphas: list[dict[str, Any]] = field(default_factory=list)
    search_result: dict[str, Any] | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    architecture: dict[str, Any] | None = None
    retrain_history: list[dict[str, Any]] = field(default_factory=list)
    model_info: dict[str, Any] | None = None
    model_summary: str | None = None
    metrics: dict[str, Any] | None = None
    predictions: dict[str, np.ndarray] | None = None
    samples: dict[str, Any] | None = None
    log_tail: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    # -- what the run was ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.resolve().name

    def _cfg(self, key: str, default: Any = None) -> Any:
        return (self.config or {}).get(key, default)

    @property
    def strategy(self) -> str | None:
        return self._cfg("strategy") or (self.search_result or {}).get("strategy") \
            or (self.architecture or {}).get("strategy")

    @property
    def space(self) -> str | None:
        return (self.architecture or {}).get("space") or self._cfg("space") \
            or (self.model_info or {}).get("space")

    @property
    def dataset(self) -> str | None:
        return (self.data or {}).get("name") or (self.model_info or {}).get("dataset") \
            or self._cfg("dataset")

    @property
    def seed(self) -> int | None:
        seed = (self.environment or {}).get("seed")
        return seed if seed is not None else self._cfg("seed")

    @property
    def budget(self) -> float | None:
        return self._cfg("budget")

    @property
    def class_names(self) -> list[str]:
        names = (self.data or {}).get("class_names") or (self.model_info or {}).get(
            "class_names")
        if names:
            return [str(n) for n in names]
        if self.predictions is not None and "test_probs" in self.predictions:
            return [str(i) for i in range(self.predictions["test_probs"].shape[1])]
        return []

    @property
    def arch(self) -> dict[str, Any] | None:
        for source in (self.architecture, self.model_info):
            if source and isinstance(source.get("arch"), dict):
                return source["arch"]
        if self.search_result and isinstance(self.search_result.get("architecture"), dict):
            return self.search_result["architecture"]
        return None

    @property
    def ops(self) -> list[str]:
        """Op names in the order of the columns of ``search/alphas.jsonl``."""
        for source in (self.architecture, self.model_info, self.config):
            ops = ((source or {}).get("space_options") or {}).get("ops")
            if ops:
                return [str(op) for op in ops]
        try:  # the space's defaults: config.yaml only records options that were set
            from ..spaces.darts import DartsSpace

            return list(DartsSpace().ops)
        except Exception:  # a report must not fail over a label
            return []

    def phase_seconds(self, phase: str) -> float | None:
        seconds = self.status.get(phase, {}).get("seconds")
        return float(seconds) if isinstance(seconds, (int, float)) else None

    @property
    def seconds_used(self) -> float | None:
        values = [self.phase_seconds(p) for p in self.status]
        values = [v for v in values if v is not None]
        return sum(values) if values else None

    def metric(self, split: str, name: str) -> float | None:
        value = ((self.metrics or {}).get(split) or {}).get(name)
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def params(self) -> int | None:
        for source in ((self.metrics or {}).get("model"), self.metrics, self.model_info):
            value = (source or {}).get("params")
            if isinstance(value, int):
                return value
        return None


def load_run(path: str | Path) -> RunData:
    """Read ``path``; raises ConfigError only when it is not a run folder at all."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; pass a run folder that `autonas run` or "
                          "`autonas search` wrote")
    if not any((root / name).exists() for name in KNOWN_FILES):
        raise ConfigError(f"{root} holds none of {', '.join(KNOWN_FILES)}: it is not a run "
                          "folder; pass the folder that `autonas run` or `autonas search` wrote")
    run = RunData(path=root)
    reader = RunReader(root, run.problems)
    run.config = reader.yaml("config.yaml")
    run.environment = reader.json("environment.json")
    run.data = reader.json("data.json")
    run.status = reader.json("status.json") or {}
    run.search_history = reader.jsonl("search/history.jsonl")
    run.alphas = reader.jsonl("search/alphas.jsonl")
    run.search_result = reader.json("search/result.json")
    run.trials = reader.jsonl("search/trials.jsonl")
    run.architecture = reader.json("architecture.json")
    if run.architecture is None:
        genotype = reader.json("genotype.json")
        if genotype and isinstance(genotype.get("genotype"), dict):
            run.architecture = {"space": "darts", "arch": genotype["genotype"]}
    run.retrain_history = reader.jsonl("retrain/history.jsonl")
    run.model_info = reader.json("model.json")
    run.model_summary = reader.text("model_summary.txt")
    run.metrics = reader.json("metrics.json")
    run.predictions = reader.npz("predictions.npz")
    run.samples = reader.npz("samples.npz")
    log = reader.text("run.log")
    run.log_tail = log.splitlines()[-40:] if log else []
    return run


class RunReader:
    """One reader per run: returns None for absent files, notes files it cannot parse."""

    def __init__(self, root: Path, problems: list[str]) -> None:
        self.root = root
        self.problems = problems

    def _path(self, name: str) -> Path | None:
        p = self.root / name
        return p if p.is_file() else None

    def _parse(self, name: str, parse: Any) -> Any:
        p = self._path(name)
        if p is None:
            return None
        try:
            return parse(p)
        except Exception as exc:  # damaged file: report it, keep going
            self.problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    def json(self, name: str) -> Any:
        value = self._parse(name, lambda p: json.loads(p.read_text()))
        return value if isinstance(value, dict) else None

    def yaml(self, name: str) -> Any:
        value = self._parse(name, lambda p: yaml.safe_load(p.read_text()))
        return value if isinstance(value, dict) else None

    def text(self, name: str) -> str | None:
        return self._parse(name, lambda p: p.read_text(errors="replace"))

    def jsonl(self, name: str) -> list[dict[str, Any]]:
        text = self.text(name)
        rows: list[dict[str, Any]] = []
        for line in (text or "").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything before it is good
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def npz(self, name: str) -> dict[str, np.ndarray] | None:
        def read(p: Path) -> dict[str, np.ndarray]:
            with np.load(p, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}

        return self._parse(name, read)
