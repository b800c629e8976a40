"""The ``resblock`` cell space: DARTS' cell and node structure with ResNet-style ops.

Candidate ops on every edge: ``zero``, ``identity``, a conv block (conv-BN-ReLU), a ResNet
basic block and a ResNet bottleneck block (He et al., 2016), BatchNorm and ReLU after the
convolutions. On the strided edges of reduction cells the blocks convolve with stride 2 and
their shortcut becomes a projection (1x1 stride-2 conv + BN); ``identity`` becomes a
factorized reduce, like DARTS' strided skip. These ops are not ReLU-first sequences ending
in an affine-free BN, so the supernet mixes them with the generic ``w * op(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import register_space
from .darts import DartsSpace
from .ops import FactorizedReduce, Zero, register_op

RESBLOCK_OPS: tuple[str, ...] = (
    "zero",
    "identity",
    "conv_block_3x3",
    "resnet_basic",
    "resnet_bottleneck",
)


def _conv(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2,
                     bias=False)


class ConvBlock(nn.Sequential):
    """conv, BN, ReLU."""

    def __init__(self, channels: int, kernel_size: int, stride: int, affine: bool = True) -> None:
        super().__init__(_conv(channels, channels, kernel_size, stride),
                         nn.BatchNorm2d(channels, affine=affine), nn.ReLU(inplace=False))


def _shortcut(channels: int, stride: int, affine: bool) -> nn.Module:
    if stride == 1:
        return nn.Identity()
    return nn.Sequential(_conv(channels, channels, 1, stride),
                         nn.BatchNorm2d(channels, affine=affine))


class ResNetBasic(nn.Module):
    """Two 3x3 convs with BN, plus the shortcut, then ReLU."""

    def __init__(self, channels: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3, stride), nn.BatchNorm2d(channels, affine=affine),
            nn.ReLU(inplace=False),
            _conv(channels, channels, 3), nn.BatchNorm2d(channels, affine=affine),
        )
        self.shortcut = _shortcut(channels, stride, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetBottleneck(nn.Module):
    """1x1 reduce to C/4, 3x3 (strided), 1x1 expand back to C, with BN; plus the shortcut,
    then ReLU."""

    def __init__(self, channels: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        mid = max(1, channels // 4)
        self.body = nn.Sequential(
            _conv(channels, mid, 1), nn.BatchNorm2d(mid, affine=affine), nn.ReLU(inplace=False),
            _conv(mid, mid, 3, stride), nn.BatchNorm2d(mid, affine=affine),
            nn.ReLU(inplace=False),
            _conv(mid, channels, 1), nn.BatchNorm2d(channels, affine=affine),
        )
        self.shortcut = _shortcut(channels, stride, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _identity(channels: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)


register_op("zero")(lambda c, s, a: Zero(s))
register_op("identity")(_identity)
register_op("conv_block_3x3")(lambda c, s, a: ConvBlock(c, 3, s, a))
register_op("resnet_basic")(lambda c, s, a: ResNetBasic(c, s, a))
register_op("resnet_bottleneck")(lambda c, s, a: ResNetBottleneck(c, s, a))


@register_space("resblock", "ResNet-block cells: identity, zero, conv block, ResNet basic and "
                "bottleneck blocks on each edge; normal and reduction cells")
@dataclass
class ResBlockSpace(DartsSpace):
    """DARTS' cells (``nodes`` nodes, two inputs each) over ResNet-style ops."""

    name = "resblock"
    ops: tuple[str, ...] = RESBLOCK_OPS
