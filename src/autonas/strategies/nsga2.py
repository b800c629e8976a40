"""NSGA-II (Deb et al., 2002) through Optuna's NSGAIISampler: a genetic search for the
Pareto front of several objectives (by default validation AUC and parameter count)."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from . import register_strategy
from .multitrial import MultiTrialStrategy, scaled_population


@register_strategy("nsga2", "NSGA-II (Optuna's NSGAIISampler): the Pareto front of several "
                   "objectives, by default auc and params (multi-trial)",
                   objectives=["auc", "params"])
@dataclass
class Nsga2(MultiTrialStrategy):
    population_size: int | None = None
    """Default: a quarter of max_trials, between 4 and 50, so a short search still evolves."""

    name = "nsga2"
    needs_choices = True

    def population(self) -> int:
        if self.population_size is not None:
            return self.population_size
        return scaled_population(self.max_trials)

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(population_size=self.population(), seed=seed)
