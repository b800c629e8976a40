"""NSGA-II (Deb et al., 2002) through Optuna's NSGAIISampler: a genetic search for the
Pareto front of several objectives (by default validation AUC and parameter count)."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from . import register_strategy
from .multitrial import MultiTrialStrategy


@register_strategy("nsga2", "NSGA-II (Optuna's NSGAIISampler): the Pareto front of several "
                   "objectives, by default auc and params (multi-trial)",
                   objectives=["auc", "params"])
@dataclass
class Nsga2(MultiTrialStrategy):
    population_size: int = 16

    name = "nsga2"
    needs_choices = True

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=seed)
