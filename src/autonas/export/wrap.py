"""The exported model: raw images in, class probabilities out (per-label probabilities,
through a sigmoid, for a multi-label model; an ordinal CORAL model's cumulative logits are
turned into class probabilities).

A trained network expects normalised float (N, C, H, W) batches; users hold uint8 or float
images laid out (N, H, W), (N, H, W, C) or (N, C, H, W), with 1, 3 or 4 channels. The
wrapper does the conversion the training data went through, so the exported module needs
nothing but a tensor of images. Its code is TorchScript-able and exports to ONNX.

Input rules (the same as :func:`autonas.data.validate.to_images`):

* ``(N, H, W)`` is a grayscale stack; ``(N, A, B, C)`` is channel-last when the last axis has
  1-4 entries, else channel-first.
* ``uint8`` images are scaled to [0, 1]; float images are taken as they are (as in training).
* 4 channels are RGBA (alpha dropped); RGB given to a grayscale model becomes luminance
  (ITU-R 601-2, as PIL's ``convert("L")``); grayscale given to an RGB model is repeated.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import Normalizer
from ..training.tasks import HEADS

LUMA = (0.299, 0.587, 0.114)


class ImageModel(nn.Module):
    """Normalisation + network (+ softmax, sigmoid or CORAL's conversion, after ``head``):
    a plain module in eval mode."""

    def __init__(self, network: nn.Module, normalizer: Normalizer, channels: int, *,
                 probabilities: bool = True, head: str = "softmax") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.network = network
        self.channels = int(channels)
        self.probabilities = bool(probabilities)
        self.head = head
        self.register_buffer("mean", normalizer.mean.clone().view(1, -1, 1, 1))
        self.register_buffer("std", normalizer.std.clone().view(1, -1, 1, 1))
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1))
        self.eval()

    def with_network(self, network: nn.Module) -> ImageModel:
        """The same wrapper around another network (e.g. its traced version)."""
        normalizer = Normalizer(self.mean.flatten(), self.std.flatten())
        return ImageModel(network, normalizer, self.channels, probabilities=self.probabilities,
                          head=self.head)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images in any accepted layout and dtype -> normalised float (N, C, H, W)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        elif x.dim() == 4:
            if x.shape[3] <= 4:
                x = x.permute(0, 3, 1, 2)
        else:
            raise ValueError("images must be (N,H,W), (N,H,W,C) or (N,C,H,W)")
        x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        c = x.shape[1]
        if c == 4:
            x = x[:, :3]
            c = 3
        if c == 3 and self.channels == 1:
            x = (x * self.luma).sum(dim=1, keepdim=True)
        elif c == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(self.preprocess(x))
        if isinstance(out, tuple):
            out = out[0]
        if not self.probabilities:
            return out
        if self.head == "sigmoid":
            return torch.sigmoid(out)
        if self.head == "coral":
            above = torch.sigmoid(out)
            edge = torch.ones_like(above[:, :1])
            cumulative = torch.cat([edge, above, edge * 0.0], dim=1)
            probs = (cumulative[:, :-1] - cumulative[:, 1:]).clamp(min=0.0)
            return probs / probs.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return out.softmax(dim=1)
