"""The one training loop (used by retraining and multi-trial search) and batched prediction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import BatchLoader, Normalizer, to_float
from .budget import Deadline, StepTimer
from .device import autocast
from .losses import Mixup, mixed_loss


class NonFiniteLossError(RuntimeError):
    """Training diverged (NaN/inf loss): the caller records the failure instead of training on."""


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    steps: int
    samples: int
    stopped_early: bool  # the deadline cut the epoch short


def train_epoch(model: nn.Module, loader: BatchLoader, optimizer: torch.optim.Optimizer,
                loss_fn: nn.Module, *, deadline: Deadline, timer: StepTimer,
                grad_clip: float | None = None, aux_weight: float = 0.0,
                before_step: Callable[[int], None] | None = None,
                after_step: Callable[[], None] | None = None,
                mixup: Mixup | None = None) -> EpochResult:
    """One pass over ``loader``; stops before a step that would overrun ``deadline``.

    ``before_step(i)`` runs before each step (e.g. to set the learning rate of the schedule),
    ``after_step()`` after each optimizer step (e.g. an EMA of the weights); ``mixup`` mixes
    each batch (the reported accuracy is then against the dominant labels).
    """
    model.train()
    device = loader.device
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = steps = 0
    stopped = False
    for i, (xb, yb) in enumerate(loader):
        if not deadline.fits(timer.estimate):
            stopped = True
            break
        with timer:
            if before_step is not None:
                before_step(i)
            optimizer.zero_grad(set_to_none=True)
            partner, lam = None, 1.0
            if mixup is not None:
                xb, partner, lam = mixup(xb, yb, i)
            with autocast(device):
                out = model(xb)
                if isinstance(out, tuple):
                    logits, aux = out
                    loss = (mixed_loss(loss_fn, logits, yb, partner, lam)
                            + aux_weight * mixed_loss(loss_fn, aux, yb, partner, lam))
                else:
                    logits = out
                    loss = mixed_loss(loss_fn, logits, yb, partner, lam)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"loss became {loss.item()} at step {i}")
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if after_step is not None:
                after_step()
            total_loss += loss.detach() * yb.shape[0]
            dominant = yb if partner is None or lam >= 0.5 else partner
            correct += (logits.detach().argmax(1) == dominant).sum()
            seen += yb.shape[0]
            steps += 1
    if seen == 0:
        return EpochResult(float("nan"), float("nan"), 0, 0, stopped)
    return EpochResult(float(total_loss) / seen, float(correct) / seen, steps, seen, stopped)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, normalizer: Normalizer | None,
                   device: torch.device, batch_size: int = 256,
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Logits for raw images ``x`` (uint8 or float, N,C,H,W), in eval mode, batched."""
    model.eval()
    forward = forward or model
    outs = []
    for start in range(0, x.shape[0], batch_size):
        xb = to_float(x[start:start + batch_size].to(device))
        if normalizer is not None:
            xb = normalizer(xb)
        xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            out = forward(xb)
        if isinstance(out, tuple):
            out = out[0]
        outs.append(out.float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def predict_proba(model: nn.Module, x: torch.Tensor, **kwargs) -> np.ndarray:
    return predict_logits(model, x, **kwargs).softmax(dim=1).numpy()
