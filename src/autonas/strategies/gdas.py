"""GDAS (Dong & Yang, 2019): one op per edge per step, sampled with the Gumbel-softmax.

Every step draws a hard one-hot op choice per edge from ``gumbel_softmax(alpha, tau)``;
only the drawn ops run, forward and backward, and the straight-through estimator passes
the gradient of the drawn op's weight back to all of alpha. The temperature anneals
linearly from ``tau_max`` to ``tau_min`` over the epochs, so sampling starts close to
uniform and ends close to the argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from . import register_strategy
from .oneshot import OneShotStrategy
from .single_path import Forward, SinglePathMixin, one_hot_argmax


def gumbel_path(alphas: dict[str, torch.Tensor], tau: float) -> Forward:
    """Hard Gumbel-softmax weights (straight-through gradients) and the drawn op per edge."""
    weights, active = {}, {}
    for kind, a in alphas.items():
        hard = F.gumbel_softmax(a, tau=tau, hard=True, dim=-1)
        weights[kind] = hard
        active[kind] = hard.detach().argmax(-1).view(-1, 1).tolist()
    return weights, active


@register_strategy("gdas", "GDAS: one Gumbel-softmax-sampled op per edge per step, "
                   "temperature annealed; only the sampled path is computed")
@dataclass
class Gdas(SinglePathMixin, OneShotStrategy):
    epochs: int = 50  # single-path steps cost a fraction of a DARTS step
    tau_max: float = 10.0
    tau_min: float = 0.1

    name = "gdas"

    def __post_init__(self) -> None:
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(f"GDAS needs 0 < tau_min <= tau_max, got tau_min={self.tau_min}, "
                              f"tau_max={self.tau_max}")
        self.tau = self.tau_max

    def temperature(self, epoch: int) -> float:
        """Linear from ``tau_max`` at the first epoch to ``tau_min`` at the last."""
        if self.epochs <= 1:
            return self.tau_min
        t = min(max(epoch / (self.epochs - 1), 0.0), 1.0)
        return self.tau_max - (self.tau_max - self.tau_min) * t

    def begin_epoch(self, epoch: int) -> None:
        self.tau = self.temperature(epoch)

    def train_path(self) -> Forward:
        return gumbel_path(dict(self.arch.alphas), self.tau)

    def eval_path(self) -> Forward:
        return one_hot_argmax({k: a.detach() for k, a in self.arch.alphas.items()})

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        params = list(self.arch.parameters())
        loss = self.loss_fn(self.forward_path(xv, self.train_path()), yv)
        for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
            p.grad = torch.zeros_like(p) if g is None else g
        self.a_optim.step()

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        return {**super().epoch_record(epoch), "tau": self.tau}
