"""Zero-cost proxies: scores of an untrained network from one or a few minibatches, meant
to rank architectures before any training (a cheap first filter for a search).

- ``params``: trainable parameters, the baseline every proxy has to beat.
- ``naswot`` (Mellor et al., 2021, "Neural Architecture Search without Training"): the
  log-determinant of the kernel counting, for each pair of images, the ReLUs on which
  their binary activation codes agree. Networks that tell the images apart score higher.
- ``synflow`` (Tanaka et al., 2020; used as a proxy by Abdelfattah et al., 2021): the
  synaptic saliency sum |theta * dR/dtheta| of R = sum of the outputs of the network with
  every weight replaced by its absolute value, on an all-ones input, in float64.
- ``zico`` (Li et al., 2023, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
  Gradients"): per layer, the log of the sum over weights of mean |gradient| / standard
  deviation of the gradient across minibatches, summed over layers.

Every proxy works on any ``nn.Module`` that maps images to logits (a tuple output counts by
its first element), on a copy: the model passed in is left untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]
PROXIES = ("params", "naswot", "synflow", "zico")


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def params(model: nn.Module, batches: Sequence[Batch] = ()) -> float:
    """Trainable parameters."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def naswot(model: nn.Module, batches: Sequence[Batch]) -> float:
    """log|det K| of the activation-code kernel on the first batch (train-mode forward,
    as in the paper, on a copy so no BatchNorm statistics change)."""
    x, _ = batches[0]
    if x.shape[0] < 2:
        raise ConfigError("naswot needs a batch of at least 2 images")
    net = copy.deepcopy(model).train()
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)
    hooks = []

    def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float64).cpu()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    for m in net.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            hooks.append(m.register_forward_hook(record))
    if not hooks:
        raise ConfigError(f"naswot needs ReLU modules; {type(model).__name__} has none")
    try:
        with torch.no_grad():
            _logits(net, x)
    finally:
        for h in hooks:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


def synflow(model: nn.Module, batches: Sequence[Batch]) -> float:
    """Synaptic flow of the conv and linear weights (BatchNorm in eval mode, so an all-ones
    input is not normalised away)."""
    x, _ = batches[0]
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.dtype.is_floating_point:
                p.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    _logits(net, ones).sum().backward()
    total = 0.0
    for layer in _weighted_layers(net):
        if layer.weight.grad is not None:
            total += float((layer.weight * layer.weight.grad).abs().sum().detach())
    return total


def zico(model: nn.Module, batches: Sequence[Batch]) -> float:
    """Sum over layers of log(sum of mean|g| / std(g)) across the batches' gradients."""
    if len(batches) < 2:
        raise ConfigError("zico needs at least 2 minibatches (gradient statistics across "
                          "batches)")
    net = copy.deepcopy(model).train()
    layers = _weighted_layers(net)
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for x, y in batches:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(_logits(net, x), y.long()).backward()
        for i, layer in enumerate(layers):
            if layer.weight.grad is not None:
                grads[i].append(layer.weight.grad.detach().flatten().double().cpu())
    total = 0.0
    for per_batch in grads:
        if len(per_batch) < 2:
            continue
        g = torch.stack(per_batch)
        std = g.std(dim=0)
        keep = std > 0
        if not keep.any():
            continue
        ratio = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if ratio > 0:
            total += math.log(ratio)
    return total


_FUNCTIONS: dict[str, Callable[[nn.Module, Sequence[Batch]], float]] = {
    "params": params, "naswot": naswot, "synflow": synflow, "zico": zico}


def score(model: nn.Module, batches: Sequence[Batch],
          names: Sequence[str] = PROXIES) -> dict[str, float]:
    """Each named proxy of ``model`` on normalised image batches ``(x, y)``."""
    unknown = [n for n in names if n not in _FUNCTIONS]
    if unknown:
        raise ConfigError(f"unknown proxy(ies) {unknown}; choose from {', '.join(PROXIES)}")
    if not batches:
        raise ConfigError("proxies need at least one minibatch")
    return {n: _FUNCTIONS[n](model, batches) for n in names}


__all__ = ["PROXIES", "naswot", "params", "score", "synflow", "zico"]
