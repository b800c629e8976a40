"""DARTS- (Chu et al., 2021): an auxiliary skip connection on every edge, weighted by a
beta that decays linearly to zero over the search.

DARTS collapses towards skip connections partly because a skip also stabilises training
of the deep supernet (a residual path), so its weight grows for reasons unrelated to its
merit as an op. The auxiliary skip takes over that role while the supernet trains; it is
not part of the softmax, not in the genotype, and gone (beta = 0) at the last epoch, when
the candidates compete on their own.

The supernet edges hold the space's ops plus one more ``skip_connect`` (identity, or a
factorized reduce on strided edges, with its own weights); its mixing weight is beta, the
others the softmax of alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..spaces.darts import CELL_TYPES, DartsSpace, Supernet
from ..training.device import to_channels_last
from . import register_strategy
from .darts import Darts
from .oneshot import ArchParams

AUX_OP = "skip_connect"


@register_strategy("darts-minus", "DARTS-: an auxiliary skip connection on every edge, its "
                   "weight decaying linearly to 0 over the search (against skip collapse)",
                   order=1)
@dataclass
class DartsMinus(Darts):
    aux_beta: float = 1.0
    """Weight of the auxiliary skip at the first epoch; it reaches 0 at the last."""

    name = "darts-minus"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.aux_beta < 0:
            raise ConfigError(f"aux_beta must be >= 0, got {self.aux_beta}")
        self.beta = self.aux_beta

    def beta_at(self, epoch: int) -> float:
        """Linear decay: ``aux_beta`` at epoch 0, 0 at the last epoch."""
        if self.epochs <= 1:
            return 0.0
        return self.aux_beta * max(0.0, 1.0 - epoch / (self.epochs - 1))

    def begin_epoch(self, epoch: int) -> None:
        self.beta = self.beta_at(epoch)

    def build_supernet(self, in_channels: int, n_classes: int, image_size: int) -> Supernet:
        ops = [*self.space.ops, AUX_OP]
        edge_ops = {t: [ops] * self.space.n_edges for t in CELL_TYPES}
        net = Supernet(self.space, in_channels, n_classes, image_size, channels=self.channels,
                       layers=self.layers, edge_ops=edge_ops)
        return to_channels_last(net.to(self.device))

    def build_arch(self, space: DartsSpace, n_ops: int) -> nn.Module:
        return ArchParams(space.n_edges, len(space.ops))  # no alpha for the auxiliary skip

    def arch_weights(self, arch: nn.Module, training: bool) -> dict[str, torch.Tensor]:
        soft = arch.softmax()
        return {t: torch.cat([w, w.new_full((w.shape[0], 1), self.beta)], dim=1)
                for t, w in soft.items()}

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        return {**super().epoch_record(epoch), "aux_beta": self.beta}
