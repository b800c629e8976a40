"""Regularized (aging) evolution (Real et al., 2019).

The population is the ``population_size`` most recent completed trials, so every
architecture dies of age however good it was: the search keeps exploring instead of
clinging to a lucky early trial. Each new trial mutates exactly one choice of the best of
``sample_size`` members drawn at random (tournament selection). The state is a function of
the trial history, so a resumed search carries on where it was.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..trials.search import order
from . import register_strategy
from .base import SearchContext
from .multitrial import MultiTrialStrategy, scaled_population


def mutate(values: dict[str, Any], choices: dict[str, list[Any]], rng: random.Random
           ) -> dict[str, Any]:
    """``values`` with exactly one choice changed to another of its options."""
    labels = [label for label, options in choices.items() if len(options) > 1]
    if not labels:
        return dict(values)
    label = rng.choice(labels)
    child = dict(values)
    child[label] = rng.choice([v for v in choices[label] if v != values[label]])
    return child


@register_strategy("evolution", "Regularized (aging) evolution: tournament selection, "
                   "mutation of one choice, the oldest member dies (multi-trial)")
@dataclass
class Evolution(MultiTrialStrategy):
    population_size: int | None = None
    """Default: a quarter of max_trials, between 4 and 50, so a short search still evolves
    (with a budget instead of max_trials: of the trials the first ones' duration lets fit)."""
    sample_size: int | None = None
    """Default: a third of the population, at least 2."""

    name = "evolution"
    needs_choices = True

    def __post_init__(self) -> None:
        super().__post_init__()
        population = self.population()
        sample = self.sample()
        if not 1 <= sample <= population:
            raise ConfigError(f"evolution needs 1 <= sample_size <= population_size, got "
                              f"{sample} and {population}")

    def population(self) -> int:
        if getattr(self, "pop", None) is not None:
            return self.pop  # as sized for this search (see prepare and resize)
        if self.population_size is not None:
            return self.population_size
        return scaled_population(self.max_trials)

    def sample(self) -> int:
        if self.sample_size is not None:
            return self.sample_size
        return min(self.population(), max(2, self.population() // 3))

    def prepare(self, ctx: SearchContext) -> None:
        self.pop = None
        self.pop, self.tournament = self.population(), self.sample()
        self.deadline = ctx.deadline

    def resize(self, history: list[dict[str, Any]]) -> None:
        """When the budget, not max_trials, ends the search, size the population to the
        trials the budget leaves room for (estimated from the trials so far), while it is
        still random sampling: a search that never gets past its population is random."""
        if (self.population_size is not None or self.max_trials is not None
                or self.deadline.at is None):
            return
        times = [r["seconds"] for r in history if r.get("seconds")]
        if len(times) < 2:
            return
        expected = len(history) + int(self.deadline.remaining() / statistics.fmean(times))
        self.pop = min(self.pop, scaled_population(expected))
        self.tournament = self.sample_size or min(self.pop, max(2, self.pop // 3))

    def propose(self, rng: random.Random, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        scored = [r for r in history if self.fitness(r) is not None]
        if len(scored) < self.pop:
            self.resize(history)
        if len(scored) < self.pop:
            return self.space.sample(rng)  # the initial, random population
        population = scored[-self.pop:]
        contestants = rng.sample(population, self.tournament)
        parent = max(contestants, key=lambda r: (self.fitness(r), order(r)))
        return self.space.from_choices(
            mutate(self.space.to_choices(parent["arch"]), self.choices, rng))
