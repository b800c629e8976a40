"""The interface every search strategy implements, and what it gets and returns.

A strategy sees the data, a deadline and the run folder; it returns an architecture as
plain JSON. It never decides what happens after the search (retraining, export): that is
the pipeline's job, so every strategy plugs into the same run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch

from ..data import ImageData
from ..recorder import Recorder
from ..run import RunDir
from ..spaces.base import BuildSpec, SearchSpace
from ..training.budget import Deadline


@dataclass
class SearchContext:
    data: ImageData
    space: SearchSpace
    run: RunDir
    deadline: Deadline
    device: torch.device
    seed: int = 0
    resume: bool = False
    target: BuildSpec | None = None
    """The network that will be retrained from the result (its depth, width, ...)."""
    config: dict[str, Any] | None = None
    """The run's resolved config, for worker processes that rebuild data and space."""
    recorder: Recorder | None = None
    """Where the strategy hands its records and checkpoints (default: one writing to
    ``run``); in a data-parallel run, only rank 0's recorder writes."""

    def __post_init__(self) -> None:
        if self.recorder is None:
            self.recorder = Recorder(self.run)


@dataclass
class SearchResult:
    architecture: dict[str, Any]
    """The space's JSON architecture (for cell spaces, the genotype)."""
    stopped: str
    """Why the search ended: ``completed``, ``budget``, or ``early-stop: <rule>``."""
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    arch_steps: int | None = None
    """Updates the architecture received (one-shot: steps with architecture weights in
    play); 0 means ``architecture`` is the untouched initialisation and the pipeline trains
    the space's default instead. None: the strategy does not count them."""


@dataclass
class Strategy(ABC):
    """Base class: strategies are dataclasses whose fields are their (YAML) options."""

    name: ClassVar[str] = "strategy"
    spaces: ClassVar[tuple[type, ...]] = ()
    """Space classes this strategy can search (empty: any space that can ``sample``)."""
    data_parallel: ClassVar[bool] = False
    """Whether the search can run data-parallel on several processes (torch.distributed)."""
    step: ClassVar[str] = "epoch"
    """What ``SearchResult.epochs`` counts for this strategy (for the log)."""

    def check_space(self, space: SearchSpace) -> None:
        from ..errors import ConfigError

        if self.spaces and not isinstance(space, self.spaces):
            names = ", ".join(getattr(s, "name", s.__name__) for s in self.spaces)
            raise ConfigError(f"strategy {self.name!r} searches {names} spaces, not "
                              f"{type(space).__name__}; pick another --space or --strategy")

    @abstractmethod
    def search(self, ctx: SearchContext) -> SearchResult:
        """Run (or resume, when ``ctx.resume``) the search within ``ctx.deadline``."""

    def options(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
