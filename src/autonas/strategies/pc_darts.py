"""PC-DARTS (Xu et al., 2020): partial channel connections and edge normalisation.

Each edge sends only 1/K of its channels through the candidate ops (``PartialChannelEdge``),
which cuts the supernet's memory and compute by about K on the ops. Because only part of
the channels is sampled, op choices fluctuate; edge normalisation stabilises the choice of
inputs with a second set of weights, beta: per node a softmax over its incoming edges,
multiplied into the op weights both when mixing and when the genotype is derived. Alphas
stay frozen for the first ``warmup_epochs`` while the supernet weights settle.

The saved memory goes into a larger default batch (64 instead of DARTS' 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..spaces.darts import CELL_TYPES, DartsSpace, Supernet
from ..spaces.pc_darts import PartialChannelEdge
from ..training.device import to_channels_last
from . import register_strategy
from .darts import Darts
from .oneshot import ArchParams, normalized_entropy


class EdgeNormArchParams(ArchParams):
    """Op logits alpha (n_edges, n_ops) and edge logits beta (n_edges) per cell type."""

    def __init__(self, nodes: int, n_ops: int, init_scale: float = 1e-3) -> None:
        n_edges = sum(i + 2 for i in range(nodes))
        super().__init__(n_edges, n_ops, init_scale)
        self.segments = [i + 2 for i in range(nodes)]
        self.betas = nn.ParameterDict(
            {t: nn.Parameter(init_scale * torch.randn(n_edges)) for t in CELL_TYPES})

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """Per node, a softmax over its incoming edges."""
        return {t: torch.cat([F.softmax(s, dim=0) for s in b.split(self.segments)])
                for t, b in self.betas.items()}

    def weights(self) -> dict[str, torch.Tensor]:
        ops, edges = self.softmax(), self.edge_weights()
        return {t: ops[t] * edges[t][:, None] for t in CELL_TYPES}


@register_strategy("pc-darts", "PC-DARTS: 1/k of the channels through the mixed ops, edge "
                   "normalisation, alphas frozen while warming up; larger default batch",
                   order=1)
@dataclass
class PCDarts(Darts):
    k: int = 4
    """1/k of each edge's channels go through the candidate ops."""
    batch_size: int = 64
    warmup_epochs: int = 5

    name = "pc-darts"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")

    def build_arch(self, space: DartsSpace, n_ops: int) -> nn.Module:
        return EdgeNormArchParams(space.nodes, n_ops)

    def build_supernet(self, in_channels: int, n_classes: int, image_size: int) -> Supernet:
        net = Supernet(self.space, in_channels, n_classes, image_size, channels=self.channels,
                       layers=self.layers, edge_factory=partial(PartialChannelEdge, k=self.k))
        return to_channels_last(net.to(self.device))

    def arch_weights(self, arch: nn.Module, training: bool) -> dict[str, torch.Tensor]:
        return arch.weights()

    def derive_weights(self, arch: nn.Module) -> dict[str, torch.Tensor]:
        return arch.weights()

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        edges, ops = self.arch.edge_weights(), self.arch.softmax()
        return {**super().epoch_record(epoch),
                # entropy of the op distributions alone (the derive weights are scaled by beta)
                "entropy": {t: normalized_entropy(ops[t]) for t in CELL_TYPES},
                "edge_weights": {t: w.detach().cpu() for t, w in edges.items()}}
