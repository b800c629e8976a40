"""All edges that read the same state, evaluated together (horizontal fusion).

In a DARTS cell a state feeds up to four edges, each holding the same candidate ops with
their own weights. Computed edge by edge, every op runs on C channels; at MedMNIST sizes
(C = 8 on 28x28 maps) such small kernels waste most of the CPU's time per element.
Here each conv-like op runs once for all m edges on the input repeated m times, with
depthwise groups = m*C, pointwise groups = m and BatchNorm over m*C channels: channels
never mix across edges, so every edge computes exactly what it would alone. Parameter-free
ops (pool + affine-free BN, identity) are computed once per state and only scaled per
edge. The per-edge modules keep owning the parameters; their weights are concatenated on
each call, so gradients flow back to them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .ops import DepthwiseConv2d, Pool, depthwise_conv2d


def _is_affine_free_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.BatchNorm2d) and not m.affine


def _is_pointwise(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
            and m.bias is None and m.padding == (0, 0) and m.stride == (1, 1))


def op_kind(op: nn.Module) -> str:
    """How an op is evaluated for a group of edges: 'conv' (fused), 'pool' / 'identity'
    (computed once, scaled per edge) or 'edge' (evaluated edge by edge)."""
    if isinstance(op, nn.Identity):
        return "identity"
    if not isinstance(op, nn.Sequential):
        return "edge"
    mods = list(op)
    if len(mods) == 2 and isinstance(mods[0], Pool) and _is_affine_free_bn(mods[1]):
        return "pool"
    if (len(mods) >= 3 and isinstance(mods[0], nn.ReLU) and _is_affine_free_bn(mods[-1])
            and all(isinstance(m, (nn.ReLU, DepthwiseConv2d)) or _is_pointwise(m)
                    or _is_affine_free_bn(m) for m in mods[1:])):
        return "conv"
    return "edge"


class FusedEdges:
    """Evaluates a group of MixedOps (same ops, same input state) in one pass.

    Not a module: it only refers to modules the cell already owns.
    """

    def __init__(self, edges: Sequence[nn.Module]) -> None:
        self.edges = list(edges)
        first = self.edges[0]
        self.compute = list(first.compute)
        self.kinds = {k: op_kind(first.ops[str(k)]) for k in self.compute}

    @staticmethod
    def compatible(edges: Sequence[nn.Module]) -> bool:
        first = edges[0]
        return all(e.op_names == first.op_names and e.stride == first.stride for e in edges)

    def __call__(self, h: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
        """Per-edge outputs ``sum_k weights[i, k] * op_ik(h)`` for ``weights`` (m, n_ops)."""
        m = len(self.edges)
        out: list[torch.Tensor | None] = [None] * m
        fused_sum: torch.Tensor | None = None
        h_relu: torch.Tensor | None = None
        repeated: torch.Tensor | None = None

        def add(i: int, y: torch.Tensor) -> None:
            out[i] = y if out[i] is None else out[i] + y

        for k in self.compute:
            kind = self.kinds[k]
            if kind == "conv":
                if repeated is None:
                    h_relu = torch.relu(h) if h_relu is None else h_relu
                    repeated = torch.cat([h_relu] * m, dim=1) if m > 1 else h_relu
                y = self._conv(k, repeated, weights[:, k])
                fused_sum = y if fused_sum is None else fused_sum + y
            elif kind == "pool":
                pool, bn = self.edges[0].ops[str(k)]
                shared = F.batch_norm(pool(h), None, None, None, None, True, 0.0, bn.eps)
                for i in range(m):
                    add(i, weights[i, k] * shared)
            elif kind == "identity":
                for i in range(m):
                    add(i, weights[i, k] * h)
            else:
                if h_relu is None:
                    h_relu = torch.relu(h)
                for i, edge in enumerate(self.edges):
                    add(i, edge(h, weights[i], active=[k], x_relu=h_relu))
        if fused_sum is not None:
            # split (one backward node that concatenates) rather than slices, whose
            # backward would zero-fill a full-size gradient per slice
            for i, y in enumerate(fused_sum.split(fused_sum.shape[1] // m, dim=1)):
                add(i, y)
        if any(y is None for y in out):  # only zero ops: the MixedOp knows the shape
            return [e(h, weights[i], active=[]) if y is None else y
                    for i, (e, y) in enumerate(zip(self.edges, out))]
        return out  # type: ignore[return-value]

    def _conv(self, k: int, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        layers = [list(edge.ops[str(k)]) for edge in self.edges]
        m = len(layers)
        last = len(layers[0]) - 1
        for depth in range(1, last + 1):  # layer 0 is the ReLU already applied to x
            mods = [layer[depth] for layer in layers]
            first = mods[0]
            if isinstance(first, nn.ReLU):
                x = torch.relu(x)
            elif isinstance(first, DepthwiseConv2d):
                weight = torch.cat([mod.weight for mod in mods]) if m > 1 else first.weight
                x = depthwise_conv2d(x, weight, first.stride, first.dilation)
            elif isinstance(first, nn.Conv2d):
                weight = torch.cat([mod.weight for mod in mods]) if m > 1 else first.weight
                x = F.conv2d(x, weight, groups=m)
            else:  # affine-free BN; the last one carries the edges' op weights as its scale
                scale = w.repeat_interleave(x.shape[1] // m) if depth == last else None
                x = F.batch_norm(x, None, None, scale, None, True, 0.0, first.eps)
        return x
