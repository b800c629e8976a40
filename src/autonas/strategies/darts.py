"""DARTS (Liu et al., 2019): continuous relaxation of the cell space, bi-level optimisation.

First order updates the architecture with the validation-loss gradient at the current
weights. Second order differentiates through one unrolled SGD step of the weights:

    grad_a L_val(w', a) - xi * [grad_a L_train(w+, a) - grad_a L_train(w-, a)] / (2 eps)

with w' = w - xi * (momentum buffer + grad_w L_train + weight decay * w) and
w+- = w +- eps * grad_w' L_val(w', alpha), eps = 0.01 / ||grad_w' L_val||. The unrolled
weights are used functionally (``torch.func.functional_call``): no copy of the network.

Data-parallel, the weight gradient of the virtual step and the vector of the
Hessian-vector product are summed across ranks inside the unrolled step; the returned
architecture gradient is this rank's part (linear in the per-rank losses), summed before
the Adam step like first order's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..errors import ConfigError
from ..training.distributed import all_reduce_sum
from . import register_strategy
from .oneshot import OneShotStrategy


def unrolled_arch_grads(net: nn.Module, arch_params: list[torch.Tensor],
                        weights_fn, loss_fn: nn.Module, xt: torch.Tensor, yt: torch.Tensor,
                        xv: torch.Tensor, yv: torch.Tensor, xi: float,
                        w_optim: torch.optim.Optimizer, momentum: float, weight_decay: float,
                        eps_scale: float = 0.01) -> list[torch.Tensor]:
    """Second-order DARTS gradient of the validation loss w.r.t. ``arch_params``.

    ``weights_fn()`` maps the architecture parameters to the supernet's mixing weights.
    """
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    names = [n for n, _ in named]
    theta = [p for _, p in named]

    # 1. One virtual SGD step of the weights on the training batch.
    with torch.no_grad():
        frozen = {k: v.detach() for k, v in weights_fn().items()}
    loss_t = loss_fn(net(xt, frozen), yt)
    grads = torch.autograd.grad(loss_t, theta, allow_unused=True)
    all_reduce_sum(grads)  # the global batch's gradient (no-op in one process)
    unrolled: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for n, p, g in zip(names, theta, grads):
            # In place on a copy of p: keeps p's memory format (channels_last convs).
            w = p.clone().mul_(1 - xi * weight_decay)
            if g is not None:
                w.sub_(g, alpha=xi)
            buf = w_optim.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                w.sub_(buf, alpha=xi * momentum)
            unrolled[n] = w
    for v in unrolled.values():
        v.requires_grad_(True)

    # 2. Validation loss at the unrolled weights: d/dalpha and d/dw'.
    loss_v = loss_fn(functional_call(net, unrolled, (xv, weights_fn())), yv)
    wanted = [*arch_params, *unrolled.values()]
    g_all = torch.autograd.grad(loss_v, wanted, allow_unused=True)
    d_alpha = [torch.zeros_like(a) if g is None else g for a, g in
               zip(arch_params, g_all[: len(arch_params)])]
    vector = [torch.zeros_like(w) if g is None else g for w, g in
              zip(unrolled.values(), g_all[len(arch_params):])]
    all_reduce_sum(vector)

    # 3. Hessian-vector product by central finite differences.
    norm = torch.sqrt(sum((v * v).sum() for v in vector))
    eps = eps_scale / norm.clamp_min(1e-12)

    def arch_grad_at(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            shifted = {n: p.clone().add_(v, alpha=float(sign * eps))
                       for n, p, v in zip(names, theta, vector)}
        loss = loss_fn(functional_call(net, shifted, (xt, weights_fn())), yt)
        g = torch.autograd.grad(loss, arch_params, allow_unused=True)
        return [torch.zeros_like(a) if gi is None else gi for a, gi in zip(arch_params, g)]

    g_pos = arch_grad_at(+1.0)
    g_neg = arch_grad_at(-1.0)
    return [da - xi * (gp - gn) / (2 * eps) for da, gp, gn in zip(d_alpha, g_pos, g_neg)]


@register_strategy("darts", "DARTS, first order: the architecture follows the validation "
                   "gradient at the current weights", order=1)
@register_strategy("darts2", "DARTS, second order: differentiates through one unrolled "
                   "weight step (about 2.5x the cost of first order)", order=2)
@dataclass
class Darts(OneShotStrategy):
    order: int = 1

    name = "darts"

    def __post_init__(self) -> None:
        if self.order not in (1, 2):
            raise ConfigError(f"DARTS order must be 1 or 2, got {self.order}")

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        params = list(self.arch.parameters())
        if self.order == 1:
            loss = self.loss_fn(self.net(xv, self.arch_weights(self.arch, training=True)), yv)
            grads = torch.autograd.grad(loss, params)
        else:
            grads = unrolled_arch_grads(
                self.net, params, lambda: self.arch_weights(self.arch, training=True),
                self.loss_fn, xt, yt, xv, yv, xi=self.w_optim.param_groups[0]["lr"],
                w_optim=self.w_optim, momentum=self.w_momentum,
                weight_decay=self.w_weight_decay)
        for p, g in zip(params, grads):
            p.grad = g
        self.a_optim.step()
