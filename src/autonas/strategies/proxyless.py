"""ProxylessNAS (Cai et al., 2019) on user model spaces: binarized paths, two sampled
values per decision, and the paper's gradient estimator for the architecture.

Weight step: one path drawn from ``softmax(alpha)`` (binary gates: one value active, the
rest not computed), so memory and time are those of a single architecture.

Architecture step, per decision: two values are drawn from ``softmax(alpha)`` without
replacement (``n_chosen + 1`` for an InputChoice choosing ``n_chosen``), their
probabilities renormalised to ``p``, and the active one(s) drawn from ``p``. Both drawn
values run; the binary gate ``g`` of each multiplies its output, so ``dL/dg_j`` is known
for both, and the gradient of alpha is the paper's estimate

    dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i)      (i, j drawn)

After the Adam step the drawn alphas are shifted together so that their total
probability is what it was: the values not drawn keep their probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register_strategy
from .model_oneshot import ModelSpaceOneShot, argmax_path
from .oneshot import OneShotStrategy
from .single_path import Forward, SinglePathMixin


def draw(p: torch.Tensor, n: int, gen: torch.Generator | None = None) -> list[int]:
    """``n`` distinct indices drawn from the distribution ``p``."""
    return sorted(torch.multinomial(p, min(n, len(p)), replacement=False,
                                    generator=gen).tolist())


def proxyless_alpha_grad(gate_grad: torch.Tensor, probs: torch.Tensor,
                         drawn: list[int]) -> torch.Tensor:
    """The binary-gate gradient estimate for alpha over the ``drawn`` values (zero elsewhere):
    ``sum_j dL/dg_j p_j (delta_ij - p_i)`` with ``p`` renormalised over ``drawn``."""
    idx = torch.tensor(drawn, device=probs.device)
    p = probs[idx] / probs[idx].sum()
    g = gate_grad[idx]
    jacobian = torch.diag(p) - p[:, None] * p[None, :]  # d p_j / d alpha_i, symmetric
    grad = torch.zeros_like(probs)
    grad[idx] = jacobian @ g
    return grad


@register_strategy("proxyless", "ProxylessNAS (model spaces): binarized single paths, two "
                   "sampled values per decision and the binary-gate gradient estimate")
@dataclass
class Proxyless(SinglePathMixin, ModelSpaceOneShot, OneShotStrategy):
    """ProxylessNAS on a ModelSpace (NNI's ``Proxyless``)."""

    epochs: int = 50  # single-path steps cost a fraction of a DARTS step

    name = "proxyless"
    soft = False

    def train_path(self) -> Forward:
        probs = self.arch.softmax()
        path = {d.label: draw(probs[d.label].detach(), d.n_chosen) for d in self.net.relaxed}
        return self.path_forward(path)

    def eval_path(self) -> Forward:
        return self.path_forward(argmax_path(self.net.relaxed, self.arch.softmax()))

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        with torch.no_grad():
            probs = {k: p.detach() for k, p in self.arch.softmax().items()}
        gates, computed, drawn = {}, {}, {}
        for d in self.net.relaxed:
            drawn[d.label] = draw(probs[d.label], d.n_chosen + 1)
            p = probs[d.label][drawn[d.label]]
            on = [drawn[d.label][i] for i in draw(p / p.sum(), d.n_chosen)]
            gate = torch.zeros(len(d.values), device=self.device)
            gate[on] = 1.0
            gates[d.label] = gate.requires_grad_(True)
            computed[d.label] = drawn[d.label]
        loss = self.loss_fn(self.net(xv, gates, computed), yv)
        labels = list(gates)
        gate_grads = torch.autograd.grad(loss, [gates[k] for k in labels], allow_unused=True)
        before = [a.detach().clone() for a in self.arch.alphas]
        for d, alpha, g in zip(self.net.relaxed, self.arch.alphas, gate_grads):
            g = torch.zeros_like(alpha) if g is None else g
            alpha.grad = proxyless_alpha_grad(g, probs[d.label], drawn[d.label])
        self.a_optim.step()
        with torch.no_grad():
            for d, alpha, old in zip(self.net.relaxed, self.arch.alphas, before):
                idx = torch.tensor(drawn[d.label], device=alpha.device)
                shift = torch.logsumexp(alpha[idx], 0) - torch.logsumexp(old[idx], 0)
                alpha[idx] -= shift


__all__ = ["Proxyless", "draw", "proxyless_alpha_grad"]
