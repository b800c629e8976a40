"""Candidate operations of the cell spaces, found by name in one registry.

Every op maps a (B, C, H, W) tensor to (B, C, H/stride, W/stride). Convolutions follow
the DARTS paper (ReLU first, BatchNorm last). The dilated depthwise convolution is written
in the formulation that is fastest on CPU while computing exactly the same function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

OpFactory = Callable[[int, int, bool], nn.Module]
"""Builds an op from (channels, stride, affine)."""

OPS: dict[str, OpFactory] = {}

DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
ZERO_OPS: frozenset[str] = frozenset({"none", "zero"})
"""Ops whose output is all zeros: never computed, only their weight matters."""

SKIP_OPS: frozenset[str] = frozenset({"skip_connect", "identity"})
"""Parameter-free identity-like ops: the ones DARTS tends to collapse towards."""


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Register an op factory under ``name`` so spaces can list ops by name."""

    def wrap(factory: OpFactory) -> OpFactory:
        if name in OPS:
            raise ValueError(f"op {name!r} is already registered")
        OPS[name] = factory
        return factory

    return wrap


def make_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    try:
        factory = OPS[name]
    except KeyError:
        known = ", ".join(sorted(OPS))
        raise KeyError(f"unknown op {name!r}; known ops: {known}") from None
    return factory(channels, stride, affine)


class Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class DepthwiseConv2d(nn.Module):
    """Depthwise conv with 'same' padding, optionally dilated and strided.

    A dilation-2, stride-2 convolution only ever reads even rows and columns, so it equals
    a dense (undilated) conv on the even-subsampled input: on CPU, with channels_last,
    that is about 20x faster than PyTorch's dilated-strided kernel. A dilation-2, stride-1
    convolution whose dilated kernel is larger than the image (5x5 on 7x7 maps) reads
    mostly padding; split into its four polyphase components it becomes a dense conv on
    half-size maps, 2-2.5x faster. Elsewhere PyTorch's kernel is the fastest (measured in
    benchmarks/step.py). The weight has the usual (C, 1, k, k) shape, so state dicts match
    a plain ``nn.Conv2d``.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(x, self.weight, self.stride, self.dilation)


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1,
                     dilation: int = 1) -> torch.Tensor:
    """Depthwise 'same' convolution in its fastest exact formulation (see DepthwiseConv2d);
    the channel count comes from ``weight``, so fused (concatenated) weights work too."""
    channels, k = weight.shape[0], weight.shape[-1]
    if dilation == 2 and stride == 2:
        return F.conv2d(x[:, :, ::2, ::2], weight, padding=(k - 1) // 2, groups=channels)
    if dilation == 2 and stride == 1 and min(x.shape[-2:]) < dilation * (k - 1) + 1:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, w % 2, 0, h % 2))  # zeros past the edge change nothing
        phases = F.pixel_unshuffle(padded, 2)  # (B, 4C, H/2, W/2), channel c*4 + phase
        y = F.conv2d(phases, weight.repeat_interleave(4, dim=0), padding=(k - 1) // 2,
                     groups=4 * channels)
        return F.pixel_shuffle(y, 2)[:, :, :h, :w]
    return F.conv2d(x, weight, stride=stride, padding=dilation * (k - 1) // 2,
                    dilation=dilation, groups=channels)


def _conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, bias=False)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def _relu_sep_bn(channels: int, kernel_size: int, stride: int, dilation: int,
                 affine: bool) -> list[nn.Module]:
    return [
        nn.ReLU(inplace=False),
        DepthwiseConv2d(channels, kernel_size, stride, dilation),
        _conv1x1(channels, channels),
        nn.BatchNorm2d(channels, affine=affine),
    ]


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise conv, pointwise conv, BN (flat, so a supernet can share the
    leading ReLU between ops and fold its mixing weight into the final BN)."""

    def __init__(self, channels: int, kernel_size: int, stride: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(*_relu_sep_bn(channels, kernel_size, stride, dilation, affine))


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs, as in DARTS (flat, like ``DilConv``)."""

    def __init__(self, channels: int, kernel_size: int, stride: int, affine: bool = True) -> None:
        super().__init__(*_relu_sep_bn(channels, kernel_size, stride, 1, affine),
                         *_relu_sep_bn(channels, kernel_size, 1, 1, affine))


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing half the pixels: two offset 1x1 stride-2 convs."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        a = self.conv_1(x)
        # Shifted by one pixel; pad odd sizes so both halves have the same shape.
        shifted = x[:, :, 1:, 1:]
        if shifted.shape[-1] < 2 * a.shape[-1] - 1 or shifted.shape[-2] < 2 * a.shape[-2] - 1:
            shifted = F.pad(shifted, (0, 1, 0, 1))
        b = self.conv_2(shifted)
        return self.bn(torch.cat([a, b], dim=1))


class Pool(nn.Module):
    def __init__(self, kind: str, stride: int) -> None:
        super().__init__()
        self.kind = kind
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return F.max_pool2d(x, 3, self.stride, 1)
        return F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=False)


def _skip(channels: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)


register_op("none")(lambda c, s, a: Zero(s))
register_op("max_pool_3x3")(lambda c, s, a: Pool("max", s))
register_op("avg_pool_3x3")(lambda c, s, a: Pool("avg", s))
register_op("skip_connect")(_skip)
register_op("sep_conv_3x3")(lambda c, s, a: SepConv(c, 3, s, a))
register_op("sep_conv_5x5")(lambda c, s, a: SepConv(c, 5, s, a))
register_op("sep_conv_7x7")(lambda c, s, a: SepConv(c, 7, s, a))
register_op("dil_conv_3x3")(lambda c, s, a: DilConv(c, 3, s, 2, a))
register_op("dil_conv_5x5")(lambda c, s, a: DilConv(c, 5, s, 2, a))
register_op("conv_1x1")(lambda c, s, a: ReLUConvBN(c, c, 1, s, 0, a))
register_op("conv_3x3")(lambda c, s, a: ReLUConvBN(c, c, 3, s, 1, a))
