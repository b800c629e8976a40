"""Losses for imbalanced medical data: cross-entropy, focal loss, class weighting."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

LOSSES = ("ce", "focal")


def class_weights_from_counts(counts: Sequence[int]) -> torch.Tensor:
    """'Balanced' weights n / (k * n_c), as scikit-learn computes them: each class then
    contributes equally to the loss. A class absent from training gets weight 0."""
    c = torch.as_tensor(list(counts), dtype=torch.float32)
    n, k = c.sum(), (c > 0).sum()
    return torch.where(c > 0, n / (k * c.clamp(min=1)), torch.zeros_like(c))


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_t)^gamma, so easy,
    majority-class examples stop dominating. gamma=0 is exactly (weighted) cross-entropy."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"focal loss gamma must be >= 0, got {gamma}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        ce = F.nll_loss(logp, target, reduction="none")
        if self.label_smoothing > 0:
            ce = (1 - self.label_smoothing) * ce - self.label_smoothing * logp.mean(dim=1)
        pt = logp.gather(1, target[:, None]).squeeze(1).exp()
        loss = (1 - pt).pow(self.gamma) * ce
        if self.weight is not None:
            w = self.weight[target]
            return (w * loss).sum() / w.sum()
        return loss.mean()


def make_loss(kind: str = "ce", class_weights: torch.Tensor | None = None, gamma: float = 2.0,
              label_smoothing: float = 0.0) -> nn.Module:
    if kind == "ce":
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if kind == "focal":
        return FocalLoss(gamma, class_weights, label_smoothing)
    raise ConfigError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")


class Mixup:
    """mixup (Zhang et al., 2018): train on convex combinations of two images, with the
    loss mixed in the same proportion. A step's draw depends only on ``key`` and the step
    index, so a resumed epoch mixes exactly as the first attempt did."""

    def __init__(self, alpha: float, key: Sequence[int]) -> None:
        if alpha <= 0:
            raise ConfigError(f"mixup alpha must be > 0 (0 turns mixup off), got {alpha}")
        self.alpha = alpha
        self.key = [int(k) for k in key]

    def __call__(self, x: torch.Tensor, y: torch.Tensor, step: int
                 ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(mixed images, the partner labels, the share ``lam`` of the original labels)."""
        rng = np.random.default_rng([*self.key, step])
        lam = float(rng.beta(self.alpha, self.alpha))
        perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
        return lam * x + (1 - lam) * x[perm], y[perm], lam


def mixed_loss(loss_fn: nn.Module, logits: torch.Tensor, y: torch.Tensor,
               y_partner: torch.Tensor | None, lam: float) -> torch.Tensor:
    """The loss of a (possibly mixed) batch: ``lam`` of the labels plus the rest of the
    partners' (plain loss when nothing was mixed)."""
    if y_partner is None:
        return loss_fn(logits, y)
    return lam * loss_fn(logits, y) + (1 - lam) * loss_fn(logits, y_partner)


def resolve_class_weights(spec: str | Sequence[float] | None, counts: Sequence[int]
                          ) -> torch.Tensor | None:
    """None/'none' -> no weights, 'auto'/'balanced' -> from counts, a list -> as given."""
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if isinstance(spec, str):
        if spec.lower() in ("auto", "balanced"):
            return class_weights_from_counts(counts)
        raise ConfigError(f"class weights must be none, auto or a list of numbers, got {spec!r}")
    w = torch.as_tensor(list(spec), dtype=torch.float32)
    if w.numel() != len(counts):
        raise ConfigError(f"got {w.numel()} class weights for {len(counts)} classes")
    return w
