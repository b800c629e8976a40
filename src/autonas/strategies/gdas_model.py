"""GDAS on user model spaces: per step, one Gumbel-softmax hard sample per decision.

Only the sampled values run (an InputChoice draws its ``n_chosen`` inputs as the top-k of
the Gumbel-perturbed logits); the straight-through estimator passes the gradient of the
sampled values' weights back to every alpha. The temperature anneals as on cell spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import register_strategy
from .gdas import Gdas
from .model_oneshot import ModelSpaceOneShot, argmax_path, gumbel_hard
from .single_path import Forward


@register_strategy("gdas", "GDAS: one Gumbel-softmax-sampled op per edge per step, "
                   "temperature annealed; only the sampled path is computed")
@dataclass
class ModelSpaceGdas(Gdas, ModelSpaceOneShot):
    """GDAS on a ModelSpace (NNI's GumbelDARTS with hard sampling)."""

    soft = False

    def train_path(self) -> Forward:
        weights, active = {}, {}
        for d, alpha in zip(self.net.relaxed, self.arch.alphas):
            weights[d.label], active[d.label] = gumbel_hard(alpha, d.n_chosen, self.tau)
        return weights, active

    def eval_path(self) -> Forward:
        return self.path_forward(argmax_path(self.net.relaxed, self.arch.softmax()))


__all__ = ["ModelSpaceGdas"]
