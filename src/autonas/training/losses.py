"""Losses for imbalanced medical data: cross-entropy, focal loss, class weighting; their
binary versions per label for multi-label data, and the cumulative (CORAL) loss for ordinal
grades."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

LOSSES = ("ce", "focal", "coral")
"""``coral`` turns on the ordinal head (``train.ordinal``) and its cumulative loss."""


def class_weights_from_counts(counts: Sequence[int]) -> torch.Tensor:
    """'Balanced' weights n / (k * n_c), as scikit-learn computes them: each class then
    contributes equally to the loss. A class absent from training gets weight 0."""
    c = torch.as_tensor(list(counts), dtype=torch.float32)
    n, k = c.sum(), (c > 0).sum()
    return torch.where(c > 0, n / (k * c.clamp(min=1)), torch.zeros_like(c))


class _Focal(nn.Module):
    """What the focal losses share: the focusing exponent gamma (checked) and label
    smoothing; each registers its own weight buffer, whose name its state dict keeps."""

    def __init__(self, gamma: float, label_smoothing: float) -> None:
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"focal loss gamma must be >= 0, got {gamma}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing


class FocalLoss(_Focal):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_t)^gamma, so easy,
    majority-class examples stop dominating. gamma=0 is exactly (weighted) cross-entropy."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(gamma, label_smoothing)
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


class MultiLabelLoss(_Focal):
    """Binary cross-entropy per label on (N, L) 0/1 targets, optionally focal.

    ``pos_weight`` (one per label) scales the positive term, so a rare finding counts as
    much as a common one ("balanced": negatives / positives per label). Label smoothing
    pulls the 0/1 targets towards 0.5 by ``label_smoothing / 2``.
    """

    def __init__(self, gamma: float = 0.0, pos_weight: torch.Tensor | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(gamma, label_smoothing)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        target = target.float()
        soft = target * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        loss = F.binary_cross_entropy_with_logits(logits, soft, pos_weight=self.pos_weight,
                                                  reduction="none")
        if self.gamma > 0:
            p = torch.sigmoid(logits)
            pt = torch.where(target > 0, p, 1 - p)
            loss = (1 - pt).pow(self.gamma) * loss
        return loss.mean()


class CoralLoss(nn.Module):
    """CORAL (Cao et al. 2020): binary cross-entropy of each cumulative logit against
    ``y > k``, for K-1 thresholds of a K-grade ordinal target (int64 class indices)."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        thresholds = torch.arange(logits.shape[1], device=logits.device)
        levels = (target[:, None] > thresholds[None, :]).float()
        levels = levels * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(logits.float(), levels)


def make_loss(kind: str = "ce", class_weights: torch.Tensor | None = None, gamma: float = 2.0,
              label_smoothing: float = 0.0, head: str = "softmax") -> nn.Module:
    """The training loss for ``head`` (see ``training.tasks``): ``kind`` ce or focal; with
    ``sigmoid`` the weights are per-label positive weights, ``coral`` takes its own loss
    (``kind`` ``coral``, ``ce`` or ``auto``)."""
    if head == "sigmoid":
        if kind not in ("ce", "focal"):
            raise ConfigError(f"multi-label data trains with loss ce or focal, not {kind!r}")
        return MultiLabelLoss(gamma if kind == "focal" else 0.0, class_weights,
                              label_smoothing)
    if head == "coral" or kind == "coral":
        if head != "coral":
            raise ConfigError("loss 'coral' needs the ordinal head: set train.ordinal=true")
        if kind not in ("ce", "coral"):
            raise ConfigError(f"an ordinal (CORAL) head trains with its own loss, not {kind!r}")
        return CoralLoss(label_smoothing)
    if kind == "ce":
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if kind == "focal":
        return FocalLoss(gamma, class_weights, label_smoothing)
    raise ConfigError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")


def label_pos_weights(positives: Sequence[int], n: int) -> torch.Tensor:
    """'Balanced' per-label positive weights, negatives / positives (1 for a label that is
    always or never present, which carries no signal to rebalance)."""
    pos = torch.as_tensor(list(positives), dtype=torch.float32)
    neg = float(n) - pos
    ok = (pos > 0) & (neg > 0)
    return torch.where(ok, neg / pos.clamp(min=1), torch.ones_like(pos))


def resolve_label_weights(spec: str | Sequence[float] | None, positives: Sequence[int],
                          n: int) -> torch.Tensor | None:
    """``resolve_class_weights`` for multi-label data: per-label positive weights."""
    if isinstance(spec, str) and spec.lower() in ("auto", "balanced"):
        return label_pos_weights(positives, n)
    return resolve_class_weights(spec, positives)


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
