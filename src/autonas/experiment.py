"""``autonas.search``: the search phase from Python, through the same run folder as the CLI.

    import autonas
    outcome = autonas.search("darts", "darts", "breastmnist", budget="5m")
    outcome = autonas.search(MySpace(), "evolution", my_image_data, max_trials=30)

The space may be a registered name, ``file.py:Class`` or a ``SearchSpace`` object; the data
a MedMNIST flag, an ``.npz`` path or an ``ImageData``. Strategy options go as keywords.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig
from .data import ImageData
from .errors import ConfigError
from .pipeline import execute
from .run import RunDir
from .spaces import SearchSpace, available_spaces, make_space
from .training.budget import parse_duration


@dataclass
class SearchOutcome:
    architecture: dict[str, Any]
    """The best architecture, as the space's JSON (also in ``run_dir/architecture.json``)."""
    run_dir: Path
    stopped: str
    """Why the search ended: ``completed``, ``budget`` or ``early-stop: ...``."""
    history: list[dict[str, Any]]
    """Multi-trial: one row per trial (``search/trials.jsonl``); one-shot: one per epoch."""
    result: dict[str, Any]
    """``search/result.json``: strategy, stopped, epochs, architecture and strategy extras
    (for multi-trial: ``n_trials``, ``storage``, ``pareto`` with several objectives)."""

    @property
    def pareto(self) -> list[dict[str, Any]]:
        return self.result.get("pareto", [])


def search(space: SearchSpace | str, strategy: str, data: ImageData | str | Path, *,
           budget: float | str | None = None, seed: int = 0, out: str | Path | None = None,
           device: str = "auto", **strategy_options: Any) -> SearchOutcome:
    """Search ``space`` with ``strategy`` on ``data`` within ``budget`` (seconds or '10m';
    None: until the strategy ends), in the run folder ``out`` (default:
    ``runs/<data>-<strategy>-<time>``)."""
    if isinstance(space, SearchSpace):
        space_name, space_options, space_obj = space_reference(space), space.options(), space
    elif isinstance(space, str):
        space_name, space_options, space_obj = space, {}, None
    else:
        raise ConfigError(f"space must be a SearchSpace or a space name, got "
                          f"{type(space).__name__}")
    if isinstance(data, ImageData):
        dataset, data_obj = data.name, data
    else:
        dataset, data_obj = str(data), None
    cfg = RunConfig(dataset=dataset, space=space_name, space_options=space_options,
                    strategy=strategy, search=dict(strategy_options),
                    budget=parse_duration(budget), seed=seed, device=device)
    run = RunDir.create(out, f"{Path(dataset).stem.lower()}-{strategy}")
    execute(cfg, run, ("search",), data=data_obj, space=space_obj)
    result = run.read_json("search/result.json")
    history_file = "search/trials.jsonl" if run.exists("search/trials.jsonl") else \
        "search/history.jsonl"
    return SearchOutcome(architecture=result["architecture"], run_dir=run.path,
                         stopped=result["stopped"], history=run.read_jsonl(history_file),
                         result=result)


def space_reference(space: SearchSpace) -> str:
    """How config.yaml names a space object so the run can rebuild it: its registered name,
    else ``file.py:Class`` (else just the class name, which cannot be rebuilt)."""
    cls = type(space)
    name = getattr(space, "name", None)
    if name in available_spaces():
        try:
            if type(make_space(name, **space.options())) is cls:
                return name
        except ConfigError:
            pass
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:
        source = None
    if source and "<" not in cls.__qualname__ and Path(source).is_file():
        return f"{source}:{cls.__qualname__}"
    return cls.__qualname__
