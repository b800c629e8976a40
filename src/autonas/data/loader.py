"""In-memory batching and index splits.

The datasets fit in memory, so a torch ``DataLoader`` with worker processes only adds
start-up cost and competes with the training threads for the few CPU cores. Batches are
gathered by index from the stored tensors, moved to the device as uint8 (4x less traffic
than float) and converted, augmented and normalised there.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autonas.data.transforms import Augment, Normalizer, to_float


class BatchLoader:
    """Iterate ``(images float32 normalised, labels int64)`` batches on ``device``.

    Shuffling and augmentation draw from ``generator`` only, so the same seed gives the same
    batches and augmentations. A new permutation is drawn at the start of every epoch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        augment: Augment | None = None,
        normalizer: Normalizer | None = None,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        channels_last: bool = False,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = None if augment is None or augment.is_identity else augment
        self.normalizer = normalizer
        self.device = torch.device(device)
        self.generator = generator
        self.channels_last = channels_last

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.num_samples
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        stop = len(self) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            if self.shuffle:
                idx = order[start : start + self.batch_size]
                xb = self.x[idx.to(self.x.device)]
                yb = self.y[idx.to(self.y.device)]
            else:  # in order: a slice, no gather copy needed
                xb = self.x[start : start + self.batch_size]
                yb = self.y[start : start + self.batch_size]
            xb = to_float(xb.to(self.device, non_blocking=True))
            yb = yb.to(self.device, dtype=torch.int64, non_blocking=True)
            if self.augment is not None:
                xb = self.augment(xb, self.generator)
            if self.normalizer is not None:
                xb = self.normalizer(xb)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb


def split_indices(
    y: torch.Tensor, fraction: float, *, seed: int, stratified: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into (rest, held-out ~fraction), keeping class proportions.

    Each class with at least 2 samples lands in both parts, so a held-out set from a small
    or imbalanced training set still contains every class. Indices come back sorted.
    Multi-label targets (N, L) are stratified on their rarest present label (images with
    no label form a group of their own), so rare findings reach both parts.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    y = torch.as_tensor(y).cpu()
    if y.ndim == 2:
        y = rarest_label(y)
    y = y.flatten()
    g = torch.Generator().manual_seed(int(seed))
    groups = (
        [torch.nonzero(y == c).flatten() for c in torch.unique(y)]
        if stratified
        else [torch.arange(len(y))]
    )
    a_parts, b_parts = [], []
    for idx in groups:
        n = len(idx)
        idx = idx[torch.randperm(n, generator=g)]
        n_b = round(fraction * n)
        n_b = min(max(n_b, 1), n - 1) if n >= 2 else 0
        b_parts.append(idx[:n_b])
        a_parts.append(idx[n_b:])
    idx_a = torch.cat(a_parts).sort().values if a_parts else torch.empty(0, dtype=torch.int64)
    idx_b = torch.cat(b_parts).sort().values if b_parts else torch.empty(0, dtype=torch.int64)
    return idx_a, idx_b


def rarest_label(y: torch.Tensor) -> torch.Tensor:
    """Per row of (N, L) 0/1 targets, the index of its least frequent present label (-1: none)."""
    y = y.to(torch.int64)
    freq = y.sum(0).to(torch.float64)
    rank = torch.where(y > 0, freq.expand_as(y), torch.full_like(freq.expand_as(y), float("inf")))
    key = rank.argmin(dim=1)
    return torch.where(y.sum(1) > 0, key, torch.full_like(key, -1))


def subset(
    x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select samples by index (a copy), e.g. to carve a search-time validation set out of train."""
    return x[idx.to(x.device)], y[idx.to(y.device)]
