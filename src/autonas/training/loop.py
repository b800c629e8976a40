"""The one training loop (used by retraining and multi-trial search) and batched prediction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import BatchLoader, Normalizer, to_float
from . import distributed
from .budget import Deadline, StepTimer
from .device import autocast


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
                after_step: Callable[[], None] | None = None) -> EpochResult:
    """One pass over ``loader``; stops before a step that would overrun ``deadline``.

    ``before_step(i)`` runs before each step (e.g. to set the learning rate of the schedule),
    ``after_step()`` after each optimizer step (e.g. an EMA of the weights).

    Data-parallel (``loader`` a ``distributed.ShardedBatches``): each rank's loss is scaled
    by its share of the global batch, gradients are summed across ranks before clipping,
    BatchNorm uses global-batch statistics, the stop decision is taken by all ranks
    together and the returned loss and accuracy are over the global batches.
    """
    model.train()
    device = loader.device
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = steps = 0
    stopped = False
    for i, (xb, yb) in enumerate(loader):
        if distributed.agree(not deadline.fits(timer.estimate)):
            stopped = True
            break
        with timer, distributed.global_batch_statistics():
            if before_step is not None:
                before_step(i)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device):
                out = model(xb)
                if isinstance(out, tuple):
                    logits, aux = out
                    loss = loss_fn(logits, yb) + aux_weight * loss_fn(aux, yb)
                else:
                    logits = out
                    loss = loss_fn(logits, yb)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"loss became {loss.item()} at step {i}")
            distributed.scaled(loss, getattr(loader, "share", 1.0)).backward()
            distributed.reduce_gradients(model.parameters())
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if after_step is not None:
                after_step()
            total_loss += loss.detach() * yb.shape[0]
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += yb.shape[0]
            steps += 1
    if distributed.is_distributed():
        totals = torch.stack([total_loss.double(), correct.double(),
                              torch.tensor(float(seen), device=device, dtype=torch.float64)])
        distributed.all_reduce_sum([totals])
        total_loss, correct, seen = totals[0], totals[1], int(totals[2].item())
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
