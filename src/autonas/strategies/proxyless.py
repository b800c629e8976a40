"""ProxylessNAS (Cai et al., 2019) on user model spaces and on the DARTS cell space:
binarized paths, two sampled values per decision (per edge, on cells), and the paper's
gradient estimator for the architecture.

Weight step: one path drawn from ``softmax(alpha)`` (binary gates: one value active, the
rest not computed), so memory and time are those of a single architecture.

Architecture step, per decision: two values are drawn from ``softmax(alpha)`` without
replacement (``n_chosen + 1`` for an InputChoice choosing ``n_chosen``), their
probabilities renormalised to ``p``, and the active one(s) drawn from ``p``. Both drawn
values run; the binary gate ``g`` of each multiplies its output, so ``dL/dg_j`` is known
for both, and the gradient of alpha is the paper's estimate

    dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i)      (i, j drawn)

After the Adam step the drawn alphas are shifted together so that their total
probability is what it was: the values not drawn keep their probabilities. On the cell
space every edge is one such decision over the ops (the zero op included, as in the
paper); the genotype is derived from the alphas as DARTS derives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register_strategy
from .model_oneshot import ModelSpaceOneShot, argmax_path
from .oneshot import OneShotStrategy
from .single_path import Forward, SinglePathMixin, one_hot_argmax


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


@register_strategy("proxyless", "ProxylessNAS: binarized single paths, two sampled values "
                   "per decision (op per edge on cells) and the binary-gate gradient estimate")
@dataclass
class Proxyless(SinglePathMixin, ModelSpaceOneShot, OneShotStrategy):
    """ProxylessNAS on a ModelSpace (NNI's ``Proxyless``)."""

    epochs: int = 50  # single-path steps cost a fraction of a DARTS step
    alpha_beta1: float = 0.0
    """No Adam momentum (the paper's setting): a value not drawn in a step, with no
    gradient, then keeps its logit, which the rescaling after each step relies on."""
    alpha_weight_decay: float = 0.0
    """Weight decay would move the logits of values not drawn: off, as in the paper."""

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
        for d, alpha, old in zip(self.net.relaxed, self.arch.alphas, before):
            shift_back(alpha, old, drawn[d.label])


def shift_back(alpha: torch.Tensor, old: torch.Tensor, drawn: list[int]) -> None:
    """Shift the ``drawn`` logits together so their total probability is what it was."""
    idx = torch.tensor(drawn, device=alpha.device)
    with torch.no_grad():
        alpha[idx] -= torch.logsumexp(alpha[idx], 0) - torch.logsumexp(old[idx], 0)


@register_strategy("proxyless", "ProxylessNAS (cell space): binarized single paths, two "
                   "sampled ops per edge and the binary-gate gradient estimate")
@dataclass
class CellProxyless(SinglePathMixin, OneShotStrategy):
    """ProxylessNAS on the DARTS cell space: every edge is a decision over the ops."""

    epochs: int = 50  # single-path steps cost a fraction of a DARTS step
    alpha_beta1: float = 0.0
    """No Adam momentum (the paper's setting): a value not drawn in a step, with no
    gradient, then keeps its logit, which the rescaling after each step relies on."""
    alpha_weight_decay: float = 0.0
    """Weight decay would move the logits of values not drawn: off, as in the paper."""

    name = "proxyless"

    def train_path(self) -> Forward:
        weights, active = {}, {}
        for kind, p in self.arch.softmax().items():
            rows = [draw(row.detach(), 1) for row in p]
            w = torch.zeros_like(p)
            for e, row in enumerate(rows):
                w[e, row] = 1.0
            weights[kind], active[kind] = w, rows
        return weights, active

    def eval_path(self) -> Forward:
        return one_hot_argmax({k: a.detach() for k, a in self.arch.alphas.items()})

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        with torch.no_grad():
            probs = {k: p.detach() for k, p in self.arch.softmax().items()}
        gates, drawn = {}, {}
        for kind, p in probs.items():
            gate = torch.zeros_like(p)
            rows = []
            for e, row in enumerate(p):
                two = draw(row, 2)
                q = row[two]
                gate[e, two[draw(q / q.sum(), 1)[0]]] = 1.0
                rows.append(two)
            gates[kind], drawn[kind] = gate.requires_grad_(True), rows
        kinds = list(gates)
        loss = self.loss_fn(self.forward_path(xv, (gates, drawn)), yv)
        grads = torch.autograd.grad(loss, [gates[k] for k in kinds], allow_unused=True)
        before = {k: self.arch.alphas[k].detach().clone() for k in kinds}
        for kind, g in zip(kinds, grads):
            alpha = self.arch.alphas[kind]
            g = torch.zeros_like(alpha) if g is None else g
            alpha.grad = torch.stack([proxyless_alpha_grad(g[e], probs[kind][e], rows)
                                      for e, rows in enumerate(drawn[kind])])
        self.a_optim.step()
        for kind in kinds:
            for e, rows in enumerate(drawn[kind]):
                shift_back(self.arch.alphas[kind][e], before[kind][e], rows)


__all__ = ["CellProxyless", "Proxyless", "draw", "proxyless_alpha_grad", "shift_back"]
