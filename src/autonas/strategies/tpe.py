"""TPE (Bergstra et al., 2011) through Optuna's TPESampler, on the space's choices.

With several objectives it is MOTPE; with constraints (max_params, ...) it steers away
from infeasible architectures, which Optuna learns from the trials' constraint values.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from ..trials.study import no_experimental_warnings
from . import register_strategy
from .multitrial import MultiTrialStrategy


@register_strategy("tpe", "TPE (Optuna's TPESampler) over the space's choices; several "
                   "objectives and constraints supported (multi-trial)")
@dataclass
class Tpe(MultiTrialStrategy):
    n_startup_trials: int = 8
    """Random trials before the density model takes over."""
    multivariate: bool = True
    """Model the choices jointly (they interact in an architecture)."""

    name = "tpe"
    needs_choices = True

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        # constant_liar: workers asking while others' trials run do not all pick the same
        with no_experimental_warnings():
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                              multivariate=self.multivariate,
                                              constant_liar=True)

    def population(self) -> int:
        return self.n_startup_trials
