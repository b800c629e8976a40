"""Batched tensor transforms: scaling, per-channel normalisation and cheap augmentation.

Everything works on whole batches already in memory (CPU or CUDA), because per-sample
Python transforms would dominate the run time of the small networks a search trains.
Randomness comes only from an explicit ``torch.Generator`` so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from autonas.data.dataset import ImageData

STD_FLOOR = 1e-6
_FIT_CHUNK_ELEMS = 1 << 22  # values per chunk in Normalizer.fit (32 MB as float64)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images are stored raw to save memory; models want float32 in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


class Normalizer:
    """Per-channel standardisation with statistics from the training split only (no leakage)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten().cpu()
        std = torch.as_tensor(std, dtype=torch.float32).flatten().cpu()
        if mean.shape != std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} differ in shape")
        self.mean = mean
        self.std = std.clamp_min(STD_FLOOR)
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(cls, x: torch.Tensor) -> Normalizer:
        """Statistics in float scale (uint8 / 255), accumulated in float64 chunk by chunk."""
        if x.ndim != 4 or x.shape[0] == 0:
            raise ValueError(
                f"Normalizer.fit needs a non-empty (N,C,H,W) tensor, got {tuple(x.shape)}"
            )
        c = x.shape[1]
        total = torch.zeros(c, dtype=torch.float64)
        total_sq = torch.zeros(c, dtype=torch.float64)
        count = 0
        step = max(1, _FIT_CHUNK_ELEMS // x[0].numel())
        for start in range(0, x.shape[0], step):
            chunk = to_float(x[start : start + step]).to(torch.float64)
            total += chunk.sum(dim=(0, 2, 3)).cpu()
            total_sq += chunk.square().sum(dim=(0, 2, 3)).cpu()
            count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
        mean = total / count
        var = (total_sq / count - mean.square()).clamp_min(0.0)
        return cls(mean.to(torch.float32), var.sqrt().to(torch.float32))

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype)
        if key not in self._cache:
            shape = (1, -1, 1, 1)
            self._cache[key] = (
                self.mean.to(x.device, x.dtype).view(shape),
                self.std.to(x.device, x.dtype).view(shape),
            )
        return self._cache[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists, so the statistics can live in a JSON run record and serve inference."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        return cls(torch.tensor(d["mean"]), torch.tensor(d["std"]))

    def __repr__(self) -> str:
        m = ", ".join(f"{v:.4f}" for v in self.mean.tolist())
        s = ", ".join(f"{v:.4f}" for v in self.std.tolist())
        return f"Normalizer(mean=[{m}], std=[{s}])"


@dataclass(frozen=True)
class Augment:
    """Random crop after padding plus random flips, vectorised over the batch.

    ``mode`` is the padding mode: ``"zeros"`` (black border, the classic CIFAR recipe; apply
    before normalisation so zero means black) or ``"reflect"``. Flips happen with
    probability 0.5 each and only when enabled: whether a flip preserves the label depends
    on the data (left/right anatomy does not), see ``ImageData.hflip`` / ``vflip``.
    """

    pad: int = 0
    hflip: bool = False
    vflip: bool = False
    mode: str = "zeros"

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        if self.mode not in ("zeros", "reflect"):
            raise ValueError(f"mode must be 'zeros' or 'reflect', got {self.mode!r}")

    @classmethod
    def default_for(cls, data: ImageData) -> Augment:
        """A mild default (shift by up to 1/8 of the side) that suits MedMNIST-sized images."""
        h = data.image_size[0]
        return cls(pad=max(2, h // 8), hflip=data.hflip, vflip=data.vflip)

    @property
    def is_identity(self) -> bool:
        return self.pad == 0 and not self.hflip and not self.vflip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a float (B,C,H,W) batch; random draws happen on CPU so CUDA batches match."""
        if x.ndim != 4:
            raise ValueError(f"Augment expects a (B,C,H,W) batch, got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        if self.pad > 0:
            p = self.pad
            if self.mode == "reflect" and (p >= h or p >= w):
                raise ValueError(f"reflect padding {p} needs images over {p} px, got {h}x{w}")
            xp = F.pad(x, (p, p, p, p), mode="constant" if self.mode == "zeros" else "reflect")
            oy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            ox = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            c = x.shape[1]
            rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]  # (B,H)
            cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]  # (B,W)
            rows = rows[:, None, :, None].expand(b, c, h, xp.shape[3])
            xp = torch.gather(xp, 2, rows)  # (B,C,H,W+2p)
            cols = cols[:, None, None, :].expand(b, c, h, w)
            x = torch.gather(xp, 3, cols)  # (B,C,H,W)
        if self.hflip:
            m = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(m[:, None, None, None], x.flip(3), x)
        if self.vflip:
            m = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(m[:, None, None, None], x.flip(2), x)
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"pad": self.pad, "hflip": self.hflip, "vflip": self.vflip, "mode": self.mode}
