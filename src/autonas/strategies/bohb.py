"""BOHB-style search (Falkner et al., 2018): TPE proposals, Hyperband early stopping.

Hyperband runs brackets of successive halving over training epochs: most trials are
stopped after ``min_epochs`` and only the best ``1 / reduction_factor`` of each rung train
on, up to ``trial_epochs``. Optuna's pruner decides from the per-epoch validation reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from ..errors import ConfigError
from . import register_strategy
from .tpe import Tpe


@register_strategy("bohb", "BOHB-style: TPE proposals with Hyperband pruning over epochs "
                   "(multi-trial)", trial_epochs=9)
@dataclass
class Bohb(Tpe):
    min_epochs: int = 1
    reduction_factor: int = 3

    name = "bohb"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.multi_objective:
            raise ConfigError("Hyperband prunes on one objective; for several objectives use "
                              "--strategy tpe or nsga2")
        if not 1 <= self.min_epochs <= self.trial_epochs:
            raise ConfigError(f"bohb needs 1 <= min_epochs <= trial_epochs, got "
                              f"{self.min_epochs} and {self.trial_epochs}")
        if self.reduction_factor < 2:
            raise ConfigError(f"reduction_factor must be >= 2, got {self.reduction_factor}")

    def make_pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.HyperbandPruner(min_resource=self.min_epochs,
                                              max_resource=self.trial_epochs,
                                              reduction_factor=self.reduction_factor)
