"""Regularized (aging) evolution (Real et al., 2019).

The population is the ``population_size`` most recent completed trials, so every
architecture dies of age however good it was: the search keeps exploring instead of
clinging to a lucky early trial. Each new trial mutates exactly one choice of the best of
``sample_size`` members drawn at random (tournament selection). The state is a function of
the trial history, so a resumed search carries on where it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from . import register_strategy
from .multitrial import MultiTrialStrategy


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
    population_size: int = 10
    sample_size: int = 3

    name = "evolution"
    needs_choices = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.sample_size <= self.population_size:
            raise ConfigError(f"evolution needs 1 <= sample_size <= population_size, got "
                              f"{self.sample_size} and {self.population_size}")

    def propose(self, rng: random.Random, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        scored = [r for r in history if self.fitness(r) is not None]
        if len(scored) < self.population_size:
            return self.space.sample(rng)  # the initial, random population
        population = scored[-self.population_size:]
        contestants = rng.sample(population, self.sample_size)
        parent = max(contestants, key=lambda r: (self.fitness(r), r["number"]))
        return self.space.from_choices(
            mutate(self.space.to_choices(parent["arch"]), self.choices, rng))
