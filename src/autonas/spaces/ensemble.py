"""The final model's averages, each behaving as one network (one module, one ONNX graph):
an ensemble of trained networks, and test-time augmentation over the flips training used.

Their output is in the same form as a single network's, so everything downstream (the
heads, the exported wrapper, thresholds, metrics) is unchanged: for a softmax head the
log of the mean class probabilities (a softmax of it gives the mean back), for a sigmoid
or CORAL head the logit of the mean per-output probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return average_outputs(torch.stack([_main_output(m(x)) for m in self.members]),
                               self.head)


FLIPS = ("hflip", "vflip")
"""Flips test-time augmentation may average over: left-right (dim 3), up-down (dim 2)."""


class FlipAverage(nn.Module):
    """Test-time augmentation: averages the probabilities of ``network`` over the image and
    its ``flips`` (``hflip``, ``vflip``; both: the four images the two flips make).

    Only flips the training augmentation used, so every view is an image the network was
    trained on; the views go through the network as one batch. The average is invariant to
    each flip it holds.
    """

    def __init__(self, network: nn.Module, flips: Sequence[str], head: str = "softmax"
                 ) -> None:
        super().__init__()
        unknown = sorted(set(flips) - set(FLIPS))
        if unknown or not flips:
            raise ValueError(f"flips must be some of {', '.join(FLIPS)}, got {list(flips)}")
        self.network = network
        self.flips = [f for f in FLIPS if f in flips]
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = [x]
        for flip in self.flips:
            dim = 3 if flip == "hflip" else 2
            views += [v.flip(dim) for v in views]
        out = _main_output(self.network(torch.cat(views)))
        return average_outputs(out.reshape(len(views), x.shape[0], *out.shape[1:]), self.head)


def average_outputs(stacked: torch.Tensor, head: str) -> torch.Tensor:
    """One output from the outputs ``stacked`` on dim 0, whose probabilities it averages."""
    if head == "softmax":
        return torch.logsumexp(torch.log_softmax(stacked, dim=2), dim=0) - math.log(
            stacked.shape[0])
    p = torch.sigmoid(stacked).mean(dim=0).clamp(EPS, 1.0 - EPS)
    return torch.log(p) - torch.log1p(-p)


def _main_output(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The classifier's output (not an auxiliary head's, given in training mode), as float."""
    return (out[0] if isinstance(out, tuple) else out).float()


def unwrap(model: nn.Module) -> nn.Module:
    """The network or ensemble under a test-time augmentation (the module that holds the
    trained weights as ``model.pt`` stores them)."""
    return model.network if isinstance(model, FlipAverage) else model


def with_tta(model: nn.Module, meta: dict[str, Any]) -> nn.Module:
    """``model`` averaged over the flips ``model.json`` (``meta``) lists as ``tta``."""
    flips = meta.get("tta") or []
    return FlipAverage(model, flips, meta["build"].get("head", "softmax")) if flips else model


def build_final(space: SearchSpace, meta: dict[str, Any]) -> nn.Module:
    """The final model ``model.json`` (``meta``) describes: its architecture, or, when it
    lists ``ensemble`` members, their :class:`Ensemble`; under a :class:`FlipAverage` when
    it lists ``tta`` flips (weights not loaded: ``model.pt`` holds :func:`unwrap`'s)."""
    spec = BuildSpec(**meta["build"])
    members = meta.get("ensemble") or []
    if len(members) <= 1:
        network = build_network(space, meta["arch"], spec)
    else:
        network = Ensemble([build_network(space, m["arch"], spec) for m in members],
                           head=spec.head)
    return with_tta(network, meta)
