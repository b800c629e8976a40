"""The exported model: raw images in, class probabilities out.

A trained network expects normalised float (N, C, H, W) batches; users hold uint8 or float
images laid out (N, H, W), (N, H, W, C) or (N, C, H, W), with 1, 3 or 4 channels. The
wrapper does the conversion the training data went through, so the exported module needs
nothing but a tensor of images. Its code is TorchScript-able and exports to ONNX.

Input rules (the same as :func:`autonas.data.validate.to_images`):

* ``(N, H, W)`` is a grayscale stack; ``(N, A, B, C)`` is channel-last when the last axis has
  1-4 entries, else channel-first.
* ``uint8`` images are scaled to [0, 1]; float images are taken as they are (as in training),
  except for a model trained on images in 0-1 (uint8, or float in 0-1): a float image whose
  largest value exceeds 1.5 is on the 0-255 scale, so it is divided by 255 too, with a
  warning (eager and TorchScript; an ONNX graph takes the training dtype only, see
  ``export.onnx``). :func:`unit_scale` says which models these are.
* 4 channels are RGBA (alpha dropped); RGB given to a grayscale model becomes luminance
  (ITU-R 601-2, as PIL's ``convert("L")``); grayscale given to an RGB model is repeated.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..data import Normalizer

LUMA = (0.299, 0.587, 0.114)
UNIT_SCALE_MAX = 1.5
"""Float pixels above this are on the 0-255 scale (same rule as ``data.validate``)."""
RESCALE_WARNING = (
    "float images with values above 1.5 given to a model trained on images in 0-1 (uint8 "
    "0-255 divided by 255, or float 0-1): they are read as 0-255 and divided by 255. Pass "
    "uint8 images, or float images in 0-1 (divide by 255), to silence this warning."
)


def unit_scale(spec: Mapping[str, Any]) -> bool:
    """Whether a model's training images reached it in 0-1: uint8 (divided by 255), or
    float with no value above 1.5 (``pixel_max``, recorded since; unknown = not assumed)."""
    if spec.get("dtype") == "uint8":
        return True
    top = spec.get("pixel_max")
    return top is not None and float(top) <= UNIT_SCALE_MAX


class ImageModel(nn.Module):
    """Normalisation + network (+ softmax): a plain module in eval mode."""

    def __init__(self, network: nn.Module, normalizer: Normalizer, channels: int, *,
                 probabilities: bool = True, unit_scale_trained: bool = False) -> None:
        super().__init__()
        self.network = network
        self.channels = int(channels)
        self.probabilities = bool(probabilities)
        self.unit_scale_trained = bool(unit_scale_trained)
        """Trained on images in 0-1: float input on the 0-255 scale is divided by 255."""
        self.rescale_above = UNIT_SCALE_MAX  # attributes, since TorchScript reads no globals
        self.rescale_warning = RESCALE_WARNING
        self.register_buffer("mean", normalizer.mean.clone().view(1, -1, 1, 1))
        self.register_buffer("std", normalizer.std.clone().view(1, -1, 1, 1))
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1))
        self.eval()

    def with_network(self, network: nn.Module) -> ImageModel:
        """The same wrapper around another network (e.g. its traced version)."""
        normalizer = Normalizer(self.mean.flatten(), self.std.flatten())
        return ImageModel(network, normalizer, self.channels, probabilities=self.probabilities,
                          unit_scale_trained=self.unit_scale_trained)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images in any accepted layout and dtype -> normalised float (N, C, H, W)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        elif x.dim() == 4:
            if x.shape[3] <= 4:
                x = x.permute(0, 3, 1, 2)
        else:
            raise ValueError("images must be (N,H,W), (N,H,W,C) or (N,C,H,W)")
        if x.dtype == torch.uint8:
            x = x.to(torch.float32) / 255.0
        else:
            x = x.to(torch.float32)
            if self.unit_scale_trained:
                x = self._rescale_0_255(x)
        c = x.shape[1]
        if c == 4:
            x = x[:, :3]
            c = 3
        if c == 3 and self.channels == 1:
            x = (x * self.luma).sum(dim=1, keepdim=True)
        elif c == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def _rescale_0_255(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N,C,H,W) on the 0-255 scale divided by 255, image by image, so a
        prediction does not depend on what else is in the batch."""
        if x.numel() == 0:
            return x
        wide = x.amax(dim=[1, 2, 3], keepdim=True) > self.rescale_above
        if bool(wide.any()):
            warnings.warn(self.rescale_warning, stacklevel=2)
            x = torch.where(wide, x / 255.0, x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(self.preprocess(x))
        if isinstance(out, tuple):
            out = out[0]
        return out.softmax(dim=1) if self.probabilities else out
