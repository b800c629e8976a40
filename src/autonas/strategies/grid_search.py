"""Grid search: every architecture of a finite categorical space, each exactly once."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..trials.search import choice_key, space_size
from ..trials.study import INTERRUPTED
from . import register_strategy
from .base import SearchContext
from .multitrial import MultiTrialStrategy

MAX_GRID = 10**6


@register_strategy("grid", "Grid search: every combination of the space's choices once, in a "
                   "fixed order (multi-trial; finite spaces)")
@dataclass
class GridSearch(MultiTrialStrategy):
    name = "grid"
    needs_choices = True
    finite = True

    def prepare(self, ctx: SearchContext) -> None:
        size = space_size(self.choices)
        shape = " x ".join(str(len(v)) for v in self.choices.values())
        if size > MAX_GRID:
            raise ConfigError(f"the grid has {size:,} architectures ({shape} choices), more than "
                              f"{MAX_GRID:,}; search it with random, evolution or tpe instead")
        if self.max_trials is not None and self.max_trials < size:
            raise ConfigError(f"the grid has {size:,} architectures ({shape} choices) but "
                              f"max_trials is {self.max_trials}; raise --max-trials to {size} "
                              "or use random, evolution or tpe")
        self._order: Iterator[tuple[Any, ...]] = itertools.product(*self.choices.values())

    def propose(self, rng: random.Random, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        tried = {choice_key(self.space.to_choices(r["arch"])) for r in history
                 if r.get("error") != INTERRUPTED}
        for combo in self._order:
            values = dict(zip(self.choices, combo))
            if choice_key(values) not in tried:
                return self.space.from_choices(values)
        return None
