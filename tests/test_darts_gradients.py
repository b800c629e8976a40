"""The second-order DARTS architecture gradient against exact autograd through the unrolled
weight step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from autonas.spaces.darts import DartsSpace, Supernet
from autonas.strategies.darts import unrolled_arch_grads

XI = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 0.01
# The finite difference is taken over a tiny step: ReLUs and max pools make the gradient
# piecewise smooth, and the default step (0.01 / ||v||) crosses kinks on any ReLU network,
# so only a small step can be compared with the exact derivative. float64 keeps it exact.
EPS_SCALE = 1e-7
CELL_TYPES = ("normal", "reduce")


def _norm(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum((t * t).sum() for t in ts))


def _rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(_norm([x - y for x, y in zip(a, b)]) / _norm(b))


def _make(seed: int = 0) -> dict:
    """A tiny float64 supernet, architecture logits, batches, and an SGD optimizer that has
    taken one real step (so every parameter has a non-zero momentum buffer)."""
    torch.manual_seed(seed)
    f64 = torch.float64
    space = DartsSpace(nodes=2)
    net = Supernet(space, 1, 3, 12, channels=4, layers=2).double()
    alphas = {t: (0.5 * torch.randn(space.n_edges, len(space.ops), dtype=f64)
                  ).requires_grad_(True) for t in CELL_TYPES}
    arch = [alphas[t] for t in CELL_TYPES]

    def weights_fn(a: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        a = alphas if a is None else a
        return {t: F.softmax(a[t], dim=-1) for t in CELL_TYPES}

    xt, xv = torch.randn(4, 1, 12, 12, dtype=f64), torch.randn(4, 1, 12, 12, dtype=f64)
    yt, yv = torch.tensor([0, 1, 2, 1]), torch.tensor([2, 0, 1, 0])
    loss_fn = torch.nn.CrossEntropyLoss()
    optim = torch.optim.SGD(net.parameters(), lr=XI, momentum=MOMENTUM,
                            weight_decay=WEIGHT_DECAY)
    xs, ys = torch.randn(4, 1, 12, 12, dtype=f64), torch.tensor([1, 0, 2, 2])
    optim.zero_grad()
    loss_fn(net(xs, {k: v.detach() for k, v in weights_fn().items()}), ys).backward()
    optim.step()
    optim.zero_grad(set_to_none=True)
    bufs = [optim.state[p]["momentum_buffer"] for p in net.parameters()]
    assert all(b is not None for b in bufs)
    assert float(_norm(bufs)) > 0
    return dict(net=net, arch=arch, alphas=alphas, weights_fn=weights_fn, loss_fn=loss_fn,
                optim=optim, batch=(xt, yt, xv, yv))


@pytest.fixture
def setup() -> dict:
    return _make(0)


def _exact(s: dict, xi: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(exact d L_val(w'(a), a) / da, partial d L_val(w', a) / da at fixed w')."""
    net, loss_fn, optim = s["net"], s["loss_fn"], s["optim"]
    xt, yt, xv, yv = s["batch"]
    a = {t: s["alphas"][t].detach().clone().requires_grad_(True) for t in CELL_TYPES}
    arch = [a[t] for t in CELL_TYPES]
    params = dict(net.named_parameters())
    names = list(params)
    theta = [params[n] for n in names]
    loss_t = loss_fn(functional_call(net, params, (xt, s["weights_fn"](a))), yt)
    grads = torch.autograd.grad(loss_t, theta, create_graph=True)
    unrolled = {
        n: p - xi * (MOMENTUM * optim.state[p]["momentum_buffer"] + g + WEIGHT_DECAY * p)
        for n, p, g in zip(names, theta, grads)
    }
    loss_v = loss_fn(functional_call(net, unrolled, (xv, s["weights_fn"](a))), yv)
    exact = list(torch.autograd.grad(loss_v, arch))

    fixed = {n: w.detach() for n, w in unrolled.items()}
    loss_fixed = loss_fn(functional_call(net, fixed, (xv, s["weights_fn"](a))), yv)
    partial = list(torch.autograd.grad(loss_fixed, arch))
    return exact, partial


def test_second_order_matches_exact_unrolled_gradient(setup) -> None:
    s = setup
    xt, yt, xv, yv = s["batch"]
    before = {n: p.detach().clone() for n, p in s["net"].named_parameters()}
    fd = unrolled_arch_grads(s["net"], s["arch"], s["weights_fn"], s["loss_fn"], xt, yt, xv,
                             yv, xi=XI, w_optim=s["optim"], momentum=MOMENTUM,
                             weight_decay=WEIGHT_DECAY, eps_scale=EPS_SCALE)
    # the network's own weights are left untouched
    for n, p in s["net"].named_parameters():
        assert torch.equal(p, before[n]), n
    exact, partial = _exact(s, XI)
    assert [g.shape for g in fd] == [a.shape for a in s["arch"]]
    assert all(g.dtype == torch.float64 for g in fd)

    rel = _rel(fd, exact)
    assert rel < 1e-3, rel

    # The Hessian (implicit) term is a sizeable part of the gradient, so a wrongly scaled
    # finite difference (divided by eps instead of 2 eps) could not pass.
    implicit = [e - p for e, p in zip(exact, partial)]
    assert float(_norm(implicit) / _norm(exact)) > 0.05
    doubled = [p + 2 * (f - p) for f, p in zip(fd, partial)]
    assert _rel(doubled, exact) > 20 * 1e-3
    without = partial
    assert _rel(without, exact) > 20 * 1e-3


def test_second_order_ignores_momentum_and_decay_when_zero(setup) -> None:
    """With a fresh optimizer (no buffer) and no decay, the unrolled step is plain SGD."""
    s = setup
    xt, yt, xv, yv = s["batch"]
    fresh = torch.optim.SGD(s["net"].parameters(), lr=XI, momentum=MOMENTUM)
    fd = unrolled_arch_grads(s["net"], s["arch"], s["weights_fn"], s["loss_fn"], xt, yt, xv,
                             yv, xi=XI, w_optim=fresh, momentum=MOMENTUM, weight_decay=0.0,
                             eps_scale=EPS_SCALE)
    net, loss_fn = s["net"], s["loss_fn"]
    a = {t: s["alphas"][t].detach().clone().requires_grad_(True) for t in CELL_TYPES}
    params = dict(net.named_parameters())
    loss_t = loss_fn(functional_call(net, params, (xt, s["weights_fn"](a))), yt)
    grads = torch.autograd.grad(loss_t, list(params.values()), create_graph=True)
    unrolled = {n: p - XI * g for (n, p), g in zip(params.items(), grads)}
    loss_v = loss_fn(functional_call(net, unrolled, (xv, s["weights_fn"](a))), yv)
    exact = list(torch.autograd.grad(loss_v, [a[t] for t in CELL_TYPES]))
    assert _rel(fd, exact) < 1e-3
    # and differs from the gradient with the momentum buffer (which is non-zero)
    with_momentum, _ = _exact(s, XI)
    assert _rel(exact, with_momentum) > 1e-2


def test_first_order_is_plain_validation_gradient(setup) -> None:
    s = setup
    xt, yt, xv, yv = s["batch"]
    fd = unrolled_arch_grads(s["net"], s["arch"], s["weights_fn"], s["loss_fn"], xt, yt, xv,
                             yv, xi=0.0, w_optim=s["optim"], momentum=MOMENTUM,
                             weight_decay=WEIGHT_DECAY)
    loss_v = s["loss_fn"](s["net"](xv, s["weights_fn"]()), yv)
    plain = torch.autograd.grad(loss_v, s["arch"])
    for got, want in zip(fd, plain):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
