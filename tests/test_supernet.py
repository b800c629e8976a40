"""The DARTS supernet (search) and the fixed network a genotype describes (retrain)."""

from __future__ import annotations

import pytest
import torch

from autonas.errors import ConfigError
from autonas.spaces.darts import (
    DartsSpace,
    MixedOp,
    Network,
    NetworkConfig,
    SearchCell,
    Supernet,
    stem_downsamples,
)
from autonas.spaces.genotype import edge_inputs
from autonas.spaces.ops import DARTS_OPS, ZERO_OPS


def _weights(space: DartsSpace, seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {t: torch.softmax(torch.randn(space.n_edges, len(space.ops), generator=g,
                                         dtype=dtype), dim=-1)
            for t in ("normal", "reduce")}


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_supernet_output_shape(in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    space = DartsSpace(nodes=2)
    net = Supernet(space, in_channels, 5, size, channels=4, layers=3)
    x = torch.randn(2, in_channels, size, size)
    out = net(x, _weights(space))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


def test_stem_is_strided_for_large_images() -> None:
    assert stem_downsamples(28) == 0
    assert stem_downsamples(32) == 0
    assert stem_downsamples(64) == 1
    assert stem_downsamples(224) == 3
    space = DartsSpace(nodes=2)
    small = Supernet(space, 1, 2, 28, channels=4, layers=2)
    large = Supernet(space, 1, 2, 64, channels=4, layers=2)
    strided = [m for m in large.stem.modules()
               if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 1
    assert not [m for m in small.stem.modules()
                if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    # the stride-2 stem brings a 64 px image to the size a 32 px one gives
    assert large.stem(torch.randn(2, 1, 64, 64)).shape[-1] == 32


# ----------------------------------------------------------------------------- MixedOp


def _reference_mixed(mixed: MixedOp, x: torch.Tensor, w: torch.Tensor,
                     active: list[int] | None) -> torch.Tensor:
    """sum_k w[k] * op_k(x) with the MixedOp's own op modules; zero ops add zeros."""
    out = None
    stride = mixed.stride
    for k, name in enumerate(mixed.op_names):
        if active is not None and k not in active:
            continue
        if name in ZERO_OPS:
            y = torch.zeros_like(x[:, :, ::stride, ::stride])
        else:
            y = mixed.ops[str(k)](x)
        term = w[k] * y
        out = term if out is None else out + term
    return out


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pass_relu", [False, True])
@pytest.mark.parametrize("active", [None, [0, 2, 4, 6], [1, 3, 7]])
def test_mixed_op_is_weighted_sum(stride: int, pass_relu: bool, active) -> None:
    torch.manual_seed(stride * 10 + (active is None))
    mixed = MixedOp(DARTS_OPS, 4, stride).double().train()
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    alpha = torch.randn(len(DARTS_OPS), dtype=torch.float64, requires_grad=True)
    w = torch.softmax(alpha, dim=0)
    params = list(mixed.parameters())
    assert params  # the conv ops have weights

    x_relu = torch.relu(x) if pass_relu else None
    out = mixed(x, w, active=active, x_relu=x_relu)
    ref = _reference_mixed(mixed, x, w, active)
    assert out.shape == (3, 4, -(-7 // stride), -(-7 // stride))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)

    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, [x, alpha, *params], g, allow_unused=True,
                                retain_graph=True)
    grads_ref = torch.autograd.grad(ref, [x, alpha, *params], g, allow_unused=True)
    for got, want in zip(grads, grads_ref):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0
            continue
        assert got is not None
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    # the op weights really receive a gradient
    assert grads[1].abs().sum() > 0


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("reduction", [False, True])
def test_search_cell_matches_textbook_gradients(reduction: bool, channels_last: bool) -> None:
    """The whole cell (shared ReLUs, weights folded into BN, states feeding several edges)
    against the textbook loop over the same modules: outputs and every gradient.

    Per-op checks alone missed a wrong alpha gradient that only appeared inside a cell.
    """
    torch.manual_seed(3)
    space = DartsSpace()
    cell = SearchCell([list(DARTS_OPS)] * space.n_edges, space.nodes, 6, 6, 4,
                      reduction=reduction, reduction_prev=False).double()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    cell = cell.to(memory_format=fmt)
    s0 = torch.randn(8, 6, 28, 28, dtype=torch.float64).contiguous(memory_format=fmt)
    s1 = torch.randn(8, 6, 28, 28, dtype=torch.float64).contiguous(memory_format=fmt)
    s0.requires_grad_(True)
    s1.requires_grad_(True)
    alpha = torch.randn(space.n_edges, len(DARTS_OPS), dtype=torch.float64,
                        requires_grad=True)

    def textbook() -> torch.Tensor:
        w = torch.softmax(alpha, dim=-1)
        states = [cell.preprocess0(s0), cell.preprocess1(s1)]
        e = 0
        for _ in range(space.nodes):
            node = sum(_reference_mixed(cell.edges[e + j], h, w[e + j], None)
                       for j, h in enumerate(states))
            e += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)

    out = cell(s0, s1, torch.softmax(alpha, dim=-1))
    ref = textbook()
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    wrt = [alpha, s0, s1, *cell.parameters()]
    got = torch.autograd.grad(out, wrt, g, allow_unused=True)
    want = torch.autograd.grad(ref, wrt, g, allow_unused=True)
    for a, b in zip(got, want):
        if b is None:
            continue
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_mixed_op_only_zero_active_gives_zeros() -> None:
    mixed = MixedOp(DARTS_OPS, 4, 2)
    x = torch.randn(2, 4, 7, 7)
    out = mixed(x, torch.full((len(DARTS_OPS),), 0.125), active=[0])
    assert torch.equal(out, torch.zeros(2, 4, 4, 4))


def test_mixed_op_weights_scale_output() -> None:
    """Doubling every weight doubles the output (the weight is not swallowed by a BN)."""
    torch.manual_seed(0)
    mixed = MixedOp(DARTS_OPS, 4, 1).double()
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64)
    w = torch.softmax(torch.randn(len(DARTS_OPS), dtype=torch.float64), 0)
    torch.testing.assert_close(mixed(x, 2 * w), 2 * mixed(x, w))


# ----------------------------------------------------------------------------- memory format


def test_search_cell_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    space = DartsSpace(nodes=2)
    edge_ops = [list(space.ops) for _ in edge_inputs(2)]
    cell = SearchCell(edge_ops, 2, 6, 6, 4, reduction=True, reduction_prev=False)
    s0, s1 = torch.randn(2, 6, 9, 9), torch.randn(2, 6, 9, 9)
    w = _weights(space)["reduce"]
    out = cell(s0, s1, w)
    cl = torch.channels_last
    out_cl = cell(s0.contiguous(memory_format=cl), s1.contiguous(memory_format=cl), w)
    assert out.shape == (2, 8, 5, 5)
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-5)


def test_supernet_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    space = DartsSpace(nodes=2)
    net = Supernet(space, 3, 3, 16, channels=4, layers=3)
    x = torch.randn(4, 3, 16, 16)
    w = _weights(space)
    out = net(x, w)
    out_cl_input = net(x.contiguous(memory_format=torch.channels_last), w)
    torch.testing.assert_close(out_cl_input, out, rtol=1e-4, atol=1e-5)
    net_cl = net.to(memory_format=torch.channels_last)
    out_cl = net_cl(x.contiguous(memory_format=torch.channels_last), w)
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- BN statistics


def test_supernet_batchnorms_use_batch_statistics() -> None:
    torch.manual_seed(0)
    space = DartsSpace(nodes=2)
    net = Supernet(space, 1, 2, 12, channels=4, layers=2)
    names = [n for n, _ in net.named_buffers()]
    assert not [n for n in names if "running_mean" in n or "running_var" in n]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(not m.track_running_stats for m in bns)

    x = torch.randn(4, 1, 12, 12)
    w = _weights(space)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    out_eval = net(x, w)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    # eval mode normalises with the batch, exactly as train mode does
    net.train()
    torch.testing.assert_close(net(x, w), out_eval)
    # and so the output of a sample depends on the rest of its batch
    net.eval()
    assert not torch.allclose(net(x[:2], w), out_eval[:2], atol=1e-6)


# ----------------------------------------------------------------------------- Network


def _genotype_dict() -> dict:
    return {
        "normal": [[["sep_conv_3x3", 0], ["skip_connect", 1]],
                   [["dil_conv_3x3", 2], ["sep_conv_3x3", 0]]],
        "reduce": [[["max_pool_3x3", 0], ["sep_conv_3x3", 1]],
                   [["skip_connect", 2], ["dil_conv_5x5", 1]]],
    }


def _network(in_channels: int = 1, size: int = 16, layers: int = 2, **kw) -> Network:
    cfg = NetworkConfig(genotype=_genotype_dict(), in_channels=in_channels, num_classes=3,
                        image_size=size, channels=4, layers=layers, nodes=2, **kw)
    return Network(cfg)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_network_output_shape(in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    net = _network(in_channels, size)
    for mode in (net.train, net.eval):
        mode()
        out = net(torch.randn(2, in_channels, size, size))
        assert isinstance(out, torch.Tensor)
        assert out.shape == (2, 3)


def test_network_auxiliary_head() -> None:
    torch.manual_seed(0)
    net = _network(3, 16, layers=3, auxiliary=True)
    assert net.aux_head is not None
    x = torch.randn(2, 3, 16, 16)
    net.train()
    out = net(x)
    assert isinstance(out, tuple) and len(out) == 2
    logits, aux = out
    assert logits.shape == aux.shape == (2, 3)
    net.eval()
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)


def test_network_drop_path() -> None:
    torch.manual_seed(0)
    net = _network(1, 16).double()
    x = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    torch.testing.assert_close(a, b)  # no drop path: train mode is deterministic here

    net.set_drop_path(0.5)
    assert all(c.drop_prob == 0.5 for c in net.cells)
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    assert not torch.allclose(a, b)
    torch.manual_seed(1)
    torch.testing.assert_close(net(x), a)  # same seed, same paths dropped

    net.eval()
    torch.manual_seed(1)
    c = net(x)
    torch.manual_seed(2)
    d = net(x)
    torch.testing.assert_close(c, d, rtol=0, atol=0)


def test_network_unknown_op_raises() -> None:
    geno = _genotype_dict()
    geno["reduce"][0][0] = ["warp_conv_3x3", 0]
    cfg = NetworkConfig(genotype=geno, in_channels=1, num_classes=2, image_size=16,
                        channels=4, layers=2, nodes=2)
    with pytest.raises(ConfigError, match="warp_conv_3x3"):
        Network(cfg)


def test_network_bad_genotype_raises() -> None:
    cfg = NetworkConfig(genotype={"normal": []}, in_channels=1, num_classes=2, image_size=16,
                        channels=4, layers=2, nodes=2)
    with pytest.raises(ConfigError):
        Network(cfg)
