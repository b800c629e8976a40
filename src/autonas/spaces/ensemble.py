"""The final model as an ensemble: several trained networks whose probabilities are
averaged, behaving as one network (one module, one ONNX graph).

Its output is in the same form as a single network's, so everything downstream (the
heads, the exported wrapper, thresholds, metrics) is unchanged: for a softmax head the
log of the mean class probabilities (a softmax of it gives the mean back), for a sigmoid
or CORAL head the logit of the mean per-output probability.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import BuildSpec, SearchSpace, build_network

EPS = 1e-7
"""Probabilities are kept within [EPS, 1 - EPS] before a logit is taken."""


class Ensemble(nn.Module):
    """Averages the probabilities of ``members`` (networks with the same input, output and
    ``head``)."""

    def __init__(self, members: list[nn.Module], head: str = "softmax") -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.head = head
        self.log_n = math.log(len(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for member in self.members:
            out = member(x)
            if isinstance(out, tuple):  # an auxiliary head's output in training mode
                out = out[0]
            outs.append(out.float())
        stacked = torch.stack(outs)
        if self.head == "softmax":
            return torch.logsumexp(torch.log_softmax(stacked, dim=2), dim=0) - self.log_n
        p = torch.sigmoid(stacked).mean(dim=0).clamp(EPS, 1.0 - EPS)
        return torch.log(p) - torch.log1p(-p)


def build_final(space: SearchSpace, meta: dict[str, Any]) -> nn.Module:
    """The final network ``model.json`` (``meta``) describes: its architecture, or, when it
    lists ``ensemble`` members, their :class:`Ensemble` (weights not loaded)."""
    spec = BuildSpec(**meta["build"])
    members = meta.get("ensemble") or []
    if len(members) <= 1:
        return build_network(space, meta["arch"], spec)
    return Ensemble([build_network(space, m["arch"], spec) for m in members],
                    head=spec.head)
