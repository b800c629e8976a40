"""Random one-shot (SPOS) on user model spaces: uniform single paths train the shared
weights; the result is the best of ``derive_samples`` uniformly sampled architectures,
each scored on held-out data with the shared weights (NNI's ``RandomOneShot``).

Uniform sampling trains every value of every decision equally often, so the supernet
ranks architectures without the bias jointly learned architecture weights bring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..spaces.model_space import Decision
from . import register_strategy
from .model_oneshot import ModelSpaceOneShot, uniform_path
from .model_supernet import Weights
from .oneshot import OneShotStrategy
from .single_path import Forward, SinglePathMixin, check_objective
from .spos import NoArchParams


@register_strategy("spos", "Single-path one-shot: uniform path sampling trains the supernet, "
                   "then evolution over paths scored with the inherited weights")
@register_strategy("random-oneshot", "Random one-shot (model spaces): uniform single paths "
                   "train the shared weights, then the best of derive_samples sampled "
                   "architectures by held-out score")
@dataclass
class ModelSpaceSpos(SinglePathMixin, ModelSpaceOneShot, OneShotStrategy):
    """SPOS / random one-shot on a ModelSpace."""

    epochs: int = 50  # single-path steps cost a fraction of a DARTS step
    warmup_epochs: int = 0
    derive_samples: int = 32
    """Architectures sampled uniformly after training; the best on held-out data wins."""
    objective: str = "auc"
    """How architectures are scored on held-out data: accuracy or auc."""
    eval_samples: int = 512
    selection_share: float = 0.2
    """Share of the search time kept for scoring the sampled architectures."""

    name = "spos"
    soft = False

    def __post_init__(self) -> None:
        check_objective(self.objective)
        if self.derive_samples < 1:
            raise ConfigError(f"derive_samples must be >= 1, got {self.derive_samples}")
        if not 0.0 <= self.selection_share < 1.0:
            raise ConfigError(f"selection_share must be in [0, 1), got {self.selection_share}")
        self._best: dict[str, Any] | None = None

    def build_model_arch(self, decisions: list[Decision]) -> nn.Module:
        return NoArchParams()

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        """Nothing to learn: the paths are uniform."""

    def alphas_frozen(self, epoch: int) -> bool:
        return False

    def train_path(self) -> Forward:
        return self.path_forward(uniform_path(self.net.relaxed))

    def eval_path(self) -> Forward:
        # the same path every epoch, so the per-epoch numbers are comparable
        return self.path_forward(uniform_path(self.net.relaxed, torch.Generator().manual_seed(0)))

    def derive_weights(self, arch: nn.Module) -> Weights:
        """Uniform: the distribution paths are trained from."""
        return {d.label: torch.full((len(d.values),), 1 / len(d.values))
                for d in self.net.relaxed}

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "paths": "uniform"}

    def progress_text(self, record: dict[str, Any]) -> str:
        return "uniform single-path training"

    def extra_stop(self, history: list[dict]) -> str | None:
        """Nothing to stop on: the paths are uniform, no architecture settles."""
        return None

    def derive_arch(self) -> dict[str, Any]:
        if self._best is None:
            gen = torch.Generator().manual_seed(self.gen_a.initial_seed() + 5)
            paths = [uniform_path(self.net.relaxed, gen) for _ in range(self.derive_samples)]
            self._best = self.best_of(paths, self.objective)
        return self._best


__all__ = ["ModelSpaceSpos"]
