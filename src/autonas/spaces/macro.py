"""The ``macro`` space: whole ResNet-like networks, searched together with how they train.

On small medical sets the choices that matter are coarse ones: how deep and wide the
network is, where it downsamples, the stem, the kernel size, the block type, squeeze-and-
excitation and dropout. A network here is a stem, up to four stages of blocks and a pooled
linear head. Stage ``i`` has ``width * mult**i`` channels (rounded to a multiple of 8) and
``depth{i}`` blocks; its first block downsamples when ``down{i}`` is set. The stem is a
3x3 or 5x5 convolution (with stride-2 convolutions first for inputs over 45 px, so the
stages work near 32 px), optionally followed by 3x3 max pooling.

With ``hyperparameters=True`` (the default) an architecture also holds training options
under a ``train.`` prefix (learning rate, weight decay, crop strength, label smoothing,
mixup, batch size): ``train_overrides`` hands them to both the search's trials and the
retrain, so one search replaces "NAS, then tune the training".

``resnet18_arch()`` is ResNet-18 as the MedMNIST paper runs it on 28 px images (3x3 stem,
no pooling, four stages of two basic blocks, 64 to 512 channels); it is also the space's
``default_arch``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from ..errors import ConfigError
from . import register_space
from .base import BuildSpec, SearchSpace

STAGES = 4
TRAIN_PREFIX = "train."

ARCH_CHOICES: dict[str, list[Any]] = {
    "stem": ["conv3", "conv3_pool", "conv5", "conv5_pool"],
    "width": [16, 24, 32, 48, 64],
    "mult": [1.5, 2.0],
    "stages": [2, 3, 4],
    **{f"depth{i}": [1, 2, 3] for i in range(STAGES)},
    **{f"down{i}": [False, True] for i in range(STAGES)},
    **{f"kernel{i}": [3, 5] for i in range(STAGES)},
    "block": ["basic", "bottleneck", "inverted"],
    "se": [False, True],
    "dropout": [0.0, 0.1, 0.3],
}
TRAIN_CHOICES: dict[str, list[Any]] = {
    "train.lr": [0.01, 0.025, 0.05, 0.1],
    "train.weight_decay": [1e-4, 5e-4, 1e-3, 3e-3],
    "train.augment_scale": [0.0, 0.5, 1.0, 2.0],
    "train.label_smoothing": [0.0, 0.1, 0.2],
    "train.mixup": [0.0, 0.2, 0.4],
    "train.batch_size": [32, 64, 128],
}
"""Each list holds the ``TrainConfig`` default, so the default recipe is a point of the space."""


def resnet18_arch(hyperparameters: bool = True) -> dict[str, Any]:
    """ResNet-18 (28 px stem) with autonas' default training recipe."""
    arch: dict[str, Any] = {
        "stem": "conv3", "width": 64, "mult": 2.0, "stages": 4,
        **{f"depth{i}": 2 for i in range(STAGES)},
        "down0": False, "down1": True, "down2": True, "down3": True,
        **{f"kernel{i}": 3 for i in range(STAGES)},
        "block": "basic", "se": False, "dropout": 0.0,
    }
    if hyperparameters:
        arch.update({"train.lr": 0.05, "train.weight_decay": 1e-3, "train.augment_scale": 1.0,
                     "train.label_smoothing": 0.1, "train.mixup": 0.0,
                     "train.batch_size": 64})
    return arch


def stage_widths(width: int, mult: float, stages: int) -> list[int]:
    return [max(8, round(width * mult**i / 8) * 8) for i in range(stages)]


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _squeeze(channels: int, se: bool) -> nn.Module:
    return SqueezeExcitation(channels, max(8, channels // 4)) if se else nn.Identity()


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    if c_in == c_out and stride == 1:
        return nn.Identity()
    return _conv_bn(c_in, c_out, 1, stride, act=False)


class BasicBlock(nn.Module):
    """Two k x k convolutions (He et al., 2016), SE on the residual branch."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, se: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c_in, c_out, kernel, stride),
                                  _conv_bn(c_out, c_out, kernel, act=False),
                                  _squeeze(c_out, se))
        self.shortcut = _projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce to a quarter, k x k (strided), 1x1 back to ``c_out``; SE before the sum."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, se: bool) -> None:
        super().__init__()
        mid = max(8, c_out // 4)
        self.body = nn.Sequential(_conv_bn(c_in, mid, 1), _conv_bn(mid, mid, kernel, stride),
                                  _conv_bn(mid, c_out, 1, act=False), _squeeze(c_out, se))
        self.shortcut = _projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class InvertedResidual(nn.Module):
    """MobileNetV2's block (Sandler et al., 2018): 1x1 expand by 4, depthwise k x k
    (strided), SE, linear 1x1 projection; the input is added back when shapes allow."""

    expansion = 4

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, se: bool) -> None:
        super().__init__()
        mid = c_in * self.expansion
        self.body = nn.Sequential(_conv_bn(c_in, mid, 1),
                                  _conv_bn(mid, mid, kernel, stride, groups=mid),
                                  _squeeze(mid, se), _conv_bn(mid, c_out, 1, act=False))
        self.residual = c_in == c_out and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


BLOCKS: dict[str, type[nn.Module]] = {
    "basic": BasicBlock, "bottleneck": Bottleneck, "inverted": InvertedResidual}


def stem_downsamples(image_size: int) -> int:
    """Stride-2 convolutions that bring an input near 32 px (0 below 46 px)."""
    return max(0, round(math.log2(max(image_size, 1) / 32)))


class MacroNet(nn.Module):
    """The network one ``macro`` architecture describes."""

    def __init__(self, arch: dict[str, Any], in_channels: int, num_classes: int,
                 image_size: int) -> None:
        super().__init__()
        widths = stage_widths(arch["width"], arch["mult"], arch["stages"])
        kernel = 5 if arch["stem"].startswith("conv5") else 3
        stem: list[nn.Module] = []
        c = in_channels
        for _ in range(stem_downsamples(image_size)):
            stem.append(_conv_bn(c, widths[0], 3, 2))
            c = widths[0]
        stem.append(_conv_bn(c, widths[0], kernel))
        if arch["stem"].endswith("_pool"):
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        block = BLOCKS[arch["block"]]
        blocks: list[nn.Module] = []
        c = widths[0]
        for i, width in enumerate(widths):
            for j in range(arch[f"depth{i}"]):
                stride = 2 if j == 0 and arch[f"down{i}"] else 1
                blocks.append(block(c, width, arch[f"kernel{i}"], stride, arch["se"]))
                c = width
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(arch["dropout"]), nn.Linear(c, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_space("macro", "ResNet-like networks: depth, width, downsampling, stem, kernel, "
                "block type, SE, dropout, searched jointly with lr, weight decay, crop "
                "strength, label smoothing, mixup and batch size")
@dataclass
class MacroSpace(SearchSpace):
    """Whole-network choices (see the module docstring); ``hyperparameters`` adds the
    ``train.*`` choices."""

    name = "macro"
    hyperparameters: bool = True

    def choices(self) -> dict[str, list[Any]]:
        extra = TRAIN_CHOICES if self.hyperparameters else {}
        return {k: list(v) for k, v in {**ARCH_CHOICES, **extra}.items()}

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return self.validate({k: rng.choice(v) for k, v in self.choices().items()})

    def validate(self, arch: dict[str, Any]) -> dict[str, Any]:
        """Canonical form: every label present with one of its values; the options of
        stages the network does not have are set to their first value, so one network has
        one architecture (multi-trial dedup relies on it)."""
        if not isinstance(arch, dict):
            raise ConfigError(f"a macro architecture is a JSON object (label -> value), got "
                              f"{type(arch).__name__}")
        choices = self.choices()
        unknown = sorted(set(arch) - set(choices))
        if unknown:
            hint = (" (train.* labels need the space option hyperparameters: true)"
                    if any(k.startswith(TRAIN_PREFIX) for k in unknown) else "")
            raise ConfigError(f"unknown macro label(s) {unknown}{hint}; the labels are "
                              f"{sorted(choices)}")
        missing = sorted(set(choices) - set(arch))
        if missing:
            raise ConfigError(f"the macro architecture has no value for {missing}")
        out: dict[str, Any] = {}
        for label, options in choices.items():
            value = arch[label]
            match = [o for o in options if o == value and isinstance(o, bool) ==
                     isinstance(value, bool)]
            if not match:
                raise ConfigError(f"macro label {label!r} is {value!r}; choose one of "
                                  f"{options}")
            out[label] = match[0]
        for i in range(out["stages"], STAGES):
            for key in ("depth", "down", "kernel"):
                out[f"{key}{i}"] = choices[f"{key}{i}"][0]
        return out

    def from_choices(self, values: dict[str, Any]) -> dict[str, Any]:
        return self.validate(values)

    def to_choices(self, arch: dict[str, Any]) -> dict[str, Any]:
        return self.validate(arch)

    def build(self, arch: dict[str, Any], spec: BuildSpec) -> nn.Module:
        """The network for ``arch``; the spec's data sizes apply, its cell-space width and
        depth do not (the architecture chooses those)."""
        if spec.image_size < 8:
            raise ConfigError(f"the macro space needs images of at least 8 px, got "
                              f"{spec.image_size}")
        return MacroNet(self.validate(arch), spec.in_channels, spec.num_classes,
                        spec.image_size)

    def default_arch(self) -> dict[str, Any]:
        return self.validate(resnet18_arch(self.hyperparameters))

    def train_overrides(self, arch: dict[str, Any]) -> dict[str, Any]:
        arch = self.validate(arch)
        return {k[len(TRAIN_PREFIX):]: v for k, v in arch.items() if k.startswith(TRAIN_PREFIX)}

    def options(self) -> dict[str, Any]:
        return {"hyperparameters": self.hyperparameters}

    def describe(self, arch: dict[str, Any]) -> str:
        a = self.validate(arch)
        widths = stage_widths(a["width"], a["mult"], a["stages"])
        stages = " ".join(f"{a[f'depth{i}']}x{w}{'/2' if a[f'down{i}'] else ''}"
                          f"(k{a[f'kernel{i}']})" for i, w in enumerate(widths))
        text = (f"stem {a['stem']}, {a['block']} blocks{' + SE' if a['se'] else ''}: "
                f"{stages}, dropout {a['dropout']}")
        train = self.train_overrides(a)
        if train:
            text += " | " + ", ".join(f"{k}={v}" for k, v in train.items())
        return text
