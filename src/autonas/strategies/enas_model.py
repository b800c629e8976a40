"""ENAS on user model spaces: an LSTM controller samples one value per decision (its
``n_chosen`` inputs for an InputChoice) in definition order; the sampled paths share the
supernet's weights and the controller learns by REINFORCE from a sampled path's
validation reward (moving-average baseline, entropy bonus). The result is the best, on
held-out data, of ``derive_samples`` architectures drawn from the trained controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..spaces.model_space import Decision
from . import register_strategy
from .enas import reinforce_controller
from .model_oneshot import ModelSpaceOneShot, Path
from .model_supernet import Weights
from .oneshot import OneShotStrategy
from .single_path import Forward, SinglePathMixin, check_objective, path_score


class DecisionController(nn.Module):
    """An LSTM policy over a model space's decisions; holds the reward baseline too (a
    buffer, so checkpoints carry it)."""

    def __init__(self, decisions: list[Decision], hidden: int = 64,
                 tanh_constant: float = 2.5) -> None:
        super().__init__()
        self.labels = [d.label for d in decisions]
        self.sizes = [len(d.values) for d in decisions]
        self.n_chosen = [d.n_chosen for d in decisions]
        self.tanh_constant = tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.embeds = nn.ModuleList(nn.Embedding(n, hidden) for n in self.sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def sample(self, gen: torch.Generator | None = None, greedy: bool = False
               ) -> tuple[Path, torch.Tensor, torch.Tensor]:
        """(path, summed log-probability, summed entropy) of one draw."""
        h = torch.zeros_like(self.start)
        c = torch.zeros_like(self.start)
        x = self.start
        log_prob = self.start.new_zeros(())
        entropy = self.start.new_zeros(())
        path: Path = {}
        for i, label in enumerate(self.labels):
            taken: list[int] = []
            for _ in range(self.n_chosen[i]):
                h, c = self.lstm(x, (h, c))
                logits = self.tanh_constant * torch.tanh(self.heads[i](h)[0])
                if taken:
                    logits = logits.clone()
                    logits[taken] = float("-inf")
                logp = F.log_softmax(logits, dim=-1)
                p = logp.exp()
                k = int(p.argmax()) if greedy else int(torch.multinomial(p.detach(), 1,
                                                                         generator=gen))
                log_prob = log_prob + logp[k]
                entropy = entropy - (p * logp.nan_to_num(neginf=0.0)).sum()
                taken.append(k)
                x = self.embeds[i].weight[k: k + 1]
            path[label] = sorted(taken)
        return path, log_prob, entropy


@register_strategy("enas", "ENAS: an LSTM controller samples cells on shared supernet "
                   "weights, trained with REINFORCE on validation reward")
@dataclass
class ModelSpaceEnas(SinglePathMixin, ModelSpaceOneShot, OneShotStrategy):
    """ENAS on a ModelSpace."""

    epochs: int = 50  # single-path steps cost a fraction of a DARTS step
    alpha_lr: float = 3.5e-3
    alpha_weight_decay: float = 0.0
    controller_hidden: int = 64
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.95
    objective: str = "auc"
    """Reward of a sampled path on a validation batch: accuracy or auc."""
    derive_samples: int = 16
    """Architectures drawn from the trained controller; the best on held-out data wins."""

    name = "enas"
    soft = False
    selection_share = 0.05
    frequency_samples = 64

    def __post_init__(self) -> None:
        check_objective(self.objective)
        if self.derive_samples < 1:
            raise ConfigError(f"derive_samples must be >= 1, got {self.derive_samples}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        self._frequency: tuple[int, Weights] | None = None
        self._best: dict[str, Any] | None = None

    def build_model_arch(self, decisions: list[Decision]) -> nn.Module:
        return DecisionController(decisions, hidden=self.controller_hidden)

    def train_path(self) -> Forward:
        return self.path_forward(self.arch.sample()[0])

    def eval_path(self) -> Forward:
        return self.path_forward(self.arch.sample(greedy=True)[0])

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        path, log_prob, entropy = self.arch.sample()
        with torch.no_grad():
            logits = self.forward_path(xv, self.path_forward(path))
        reward = path_score(logits, yv, self.objective)
        reinforce_controller(self, reward, log_prob, entropy)

    def derive_weights(self, arch: nn.Module) -> Weights:
        """How often the controller picks each value (a fixed set of draws): what the
        records and the per-epoch architecture read."""
        key = int(arch.updates)
        if self._frequency is None or self._frequency[0] != key:
            gen = torch.Generator().manual_seed(1234)
            counts = {d.label: torch.zeros(len(d.values)) for d in self.net.relaxed}
            with torch.no_grad():
                for _ in range(self.frequency_samples):
                    for label, picked in arch.sample(gen)[0].items():
                        counts[label][picked] += 1
            self._frequency = (key, {k: c / self.frequency_samples for k, c in counts.items()})
        return self._frequency[1]

    def derive_arch(self) -> dict[str, Any]:
        if self._best is None:
            gen = torch.Generator().manual_seed(self.gen_a.initial_seed() + 7)
            with torch.no_grad():
                paths = [self.arch.sample(gen, greedy=(i == 0))[0]
                         for i in range(self.derive_samples)]
            self._best = self.best_of(paths, self.objective)
        return self._best


__all__ = ["DecisionController", "ModelSpaceEnas"]
