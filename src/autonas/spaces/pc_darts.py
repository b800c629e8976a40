"""PC-DARTS' partial channel edge (Xu et al., 2020): only 1/K of the channels go through
the candidate ops, the rest bypass them, and a channel shuffle mixes both for the next
edge. The mixed op then costs about 1/K of the memory and compute of a full edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .darts import MixedOp
from .fused import FusedEdges
from .ops import SKIP_OPS


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` equal channel groups (ShuffleNet), any memory format."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class PartialChannelGroup:
    """All partial channel edges leaving one state: their mixed ops read the same C/K
    channels, so ``FusedEdges`` evaluates them together, and the bypass (pooled on
    reduction edges) is computed once."""

    def __init__(self, edges: Sequence[PartialChannelEdge]) -> None:
        self.edges = list(edges)
        self.fused = FusedEdges([e.mixed for e in self.edges])

    def __call__(self, h: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
        first = self.edges[0]
        ys = self.fused(h[:, : h.shape[1] // first.k], weights)
        rest = first.bypass(h)
        return [e.combine(y, rest, w) for e, y, w in zip(self.edges, ys, weights)]


class PartialChannelEdge(nn.Module):
    """``shuffle(cat(mixed(x[:, :C/K]), bypass(x[:, C/K:])))``.

    ``weights`` are the edge's op weights, possibly scaled by an edge weight (PC-DARTS'
    edge normalisation multiplies the softmax by beta). A softmax sums to one, so the
    row sum is the edge weight, and it scales the bypassed channels as it scales the
    mixed ones: the whole edge output is multiplied by beta, as in the paper. Reduction
    edges max-pool the bypassed channels (3x3, stride 2, padding 1: the output size of
    every strided op).
    """

    fusable = True
    group_class = PartialChannelGroup

    def __init__(self, op_names: Sequence[str], channels: int, stride: int, k: int = 4) -> None:
        super().__init__()
        if k < 1 or channels % k:
            raise ConfigError(f"PC-DARTS sends 1/k of a cell's channels through the ops: "
                              f"{channels} channels do not split into k={k} parts; make "
                              f"search.channels a multiple of k (or change search.k)")
        part = channels // k
        if stride == 2 and part % 2 and any(name in SKIP_OPS for name in op_names):
            raise ConfigError(f"reduction edges get {part} partial channels, but a strided "
                              "skip (factorized reduce) needs an even count; make "
                              f"search.channels a multiple of {2 * k} (or change search.k)")
        self.k = k
        self.stride = stride
        self.mixed = MixedOp(op_names, part, stride)
        self.op_names = self.mixed.op_names

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                active: Sequence[int] | None = None,
                x_relu: torch.Tensor | None = None) -> torch.Tensor:
        part = x.shape[1] // self.k
        y = self.mixed(x[:, :part], weights, active,
                       None if x_relu is None else x_relu[:, :part])
        return self.combine(y, self.bypass(x), weights)

    def bypass(self, x: torch.Tensor) -> torch.Tensor:
        rest = x[:, x.shape[1] // self.k:]
        return F.max_pool2d(rest, 3, 2, 1) if self.stride == 2 else rest

    def combine(self, y: torch.Tensor, rest: torch.Tensor, weights: torch.Tensor
                ) -> torch.Tensor:
        if self.k == 1:
            return y
        return channel_shuffle(torch.cat([y, weights.sum() * rest], dim=1), self.k)
