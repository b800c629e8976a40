"""Candidate ops of the DARTS space: shapes, the fast dilated depthwise conv, the registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autonas.spaces.ops import DARTS_OPS, OPS, DepthwiseConv2d, make_op, register_op

ALL_OPS = (*DARTS_OPS, "conv_1x1", "conv_3x3", "sep_conv_7x7")


@pytest.mark.parametrize("name", ALL_OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_op_output_shape(name: str, stride: int, affine: bool) -> None:
    torch.manual_seed(0)
    channels = 4
    op = make_op(name, channels, stride, affine)
    op.train()
    for size in (28, 14, 7):
        x = torch.randn(2, channels, size, size)
        y = op(x)
        expected = math.ceil(size / stride)
        assert y.shape == (2, channels, expected, expected), (name, stride, size)
        assert torch.isfinite(y).all()


def test_none_op_outputs_zeros() -> None:
    x = torch.randn(2, 4, 7, 7)
    assert torch.equal(make_op("none", 4, 1, False)(x), torch.zeros(2, 4, 7, 7))
    assert torch.equal(make_op("none", 4, 2, False)(x), torch.zeros(2, 4, 4, 4))


def test_skip_connect_is_identity_at_stride_one() -> None:
    x = torch.randn(2, 4, 7, 7)
    assert torch.equal(make_op("skip_connect", 4, 1, True)(x), x)


def _reference_depthwise(x: torch.Tensor, w: torch.Tensor, stride: int, dilation: int
                         ) -> torch.Tensor:
    k = w.shape[-1]
    return F.conv2d(x, w, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation,
                    groups=x.shape[1])


def _check_depthwise(k: int, stride: int, dilation: int, size: int, channels_last: bool) -> None:
    torch.manual_seed(k * 100 + size + 10 * stride)
    channels = 3
    conv = DepthwiseConv2d(channels, k, stride=stride, dilation=dilation).double()
    x = torch.randn(2, channels, size, size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        conv = conv.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w_ref = conv.weight.detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().contiguous().requires_grad_(True)

    y = conv(x)
    y_ref = _reference_depthwise(x_ref, w_ref, stride, dilation)
    assert y.shape == y_ref.shape
    assert y.shape[-1] == math.ceil(size / stride)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)

    g = torch.randn_like(y_ref)
    gx, gw = torch.autograd.grad(y, (x, conv.weight), g)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (x_ref, w_ref), g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("size", [28, 14, 7])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dilated_strided_depthwise_equals_dilated_conv(k: int, size: int,
                                                       channels_last: bool) -> None:
    _check_depthwise(k, stride=2, dilation=2, size=size, channels_last=channels_last)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("size", [28, 14, 7])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_plain_path_equals_conv(k: int, size: int, dilation: int,
                                          channels_last: bool) -> None:
    _check_depthwise(k, stride=1, dilation=dilation, size=size, channels_last=channels_last)


@pytest.mark.parametrize("k", [3, 5])
def test_depthwise_undilated_strided_equals_conv(k: int) -> None:
    _check_depthwise(k, stride=2, dilation=1, size=7, channels_last=False)


def test_depthwise_weight_shape_matches_conv2d() -> None:
    conv = DepthwiseConv2d(6, 5, stride=2, dilation=2)
    assert conv.weight.shape == torch.nn.Conv2d(6, 6, 5, groups=6, bias=False).weight.shape


def test_make_op_unknown_name_lists_known_ops() -> None:
    with pytest.raises(KeyError) as info:
        make_op("conv_11x11_magic", 4, 1, True)
    message = str(info.value)
    assert "conv_11x11_magic" in message
    for name in ("sep_conv_3x3", "skip_connect", "none"):
        assert name in message


def test_register_op_twice_raises() -> None:
    name = "_test_only_identity_op"
    assert name not in OPS
    try:
        register_op(name)(lambda c, s, a: torch.nn.Identity())
        assert isinstance(make_op(name, 4, 1, True), torch.nn.Identity)
        with pytest.raises(ValueError, match="already registered"):
            register_op(name)(lambda c, s, a: torch.nn.Identity())
    finally:
        OPS.pop(name, None)


def test_register_existing_builtin_raises() -> None:
    with pytest.raises(ValueError):
        register_op("sep_conv_3x3")(lambda c, s, a: torch.nn.Identity())
    # the built-in factory is untouched
    assert not isinstance(make_op("sep_conv_3x3", 4, 1, True), torch.nn.Identity)
