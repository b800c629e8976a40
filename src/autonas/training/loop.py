"""The one training loop (used by retraining and multi-trial search) and batched prediction."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import BatchLoader, Normalizer, to_float
from . import distributed
from .budget import Deadline, StepTimer
from .device import autocast
from .losses import Mixup, mixed_loss
from .tasks import batch_correct, head_of_labels, to_probs


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
                mixup: Mixup | None = None, head: str | None = None) -> EpochResult:
    """One pass over ``loader``; stops before a step that would overrun ``deadline``.

    ``head`` (``training.tasks``) says how the running accuracy reads the logits; by
    default it follows the labels' shape.
    ``before_step(i)`` runs before each step (e.g. to set the learning rate of the schedule),
    ``after_step()`` after each optimizer step (e.g. an EMA of the weights); ``mixup`` mixes
    each batch (the reported accuracy is then against the dominant labels).

    Data-parallel (``loader`` a ``distributed.ShardedBatches``): each rank's loss is scaled
    by its share of the global batch, gradients are summed across ranks before clipping,
    BatchNorm uses global-batch statistics, the stop decision is taken by all ranks
    together and the returned loss and accuracy are over the global batches.
    """
    model.train()
    device = loader.device
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
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
            distributed.scaled(loss, getattr(loader, "share", 1.0)).backward()
            distributed.reduce_gradients(model.parameters())
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if after_step is not None:
                after_step()
            total_loss += loss.detach() * yb.shape[0]
            dominant = yb if partner is None or lam >= 0.5 else partner
            correct += batch_correct(logits.detach(), dominant, head or head_of_labels(yb))
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


def predict_proba(model: nn.Module, x: torch.Tensor, *, head: str = "softmax",
                  **kwargs) -> np.ndarray:
    """Class probabilities (N, K), or per-label probabilities (N, L) for a sigmoid head."""
    return to_probs(predict_logits(model, x, **kwargs), head).numpy()


BACKWARD_FACTOR = 3.0
"""A training step costs about this many forward passes (forward + backward + update)."""


def probe_forward_seconds(model: nn.Module, x: torch.Tensor, *, normalizer: Normalizer | None,
                          device: torch.device,
                          forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          warmup: bool = True) -> float:
    """Seconds per image of one timed eval-mode forward pass over ``x`` (one batch), after an
    untimed pass over two images (first calls pay one-off costs a step would not repeat).

    Used to estimate a phase's first training step and first evaluation *before* taking
    them. Eval mode and no gradients: the model's weights, batch-norm statistics and every
    random generator are left as they were, so a probe never changes what training does.
    """
    if x.shape[0] == 0:
        return 0.0
    if warmup:
        predict_logits(model, x[:2], normalizer=normalizer, device=device, forward=forward)
    start = time.perf_counter()
    predict_logits(model, x, normalizer=normalizer, device=device, batch_size=x.shape[0],
                   forward=forward)
    return (time.perf_counter() - start) / x.shape[0]


PROFILE_FORWARDS = 40
"""What ``profile_model`` costs in batch-of-one forward passes (3 warm-up and 20 timed
latency runs, the FLOP count's slower traced pass), with margin."""


def profile_seconds(model: nn.Module, input_shape: tuple[int, ...],
                    device: torch.device | None = None) -> float:
    """Expected seconds of ``profile_model`` on ``model``, from one timed batch-of-one forward
    pass (after one untimed warm-up), so profiling can be checked against a deadline."""
    device = device or next(model.parameters()).device
    x = torch.zeros(1, *input_shape)
    return PROFILE_FORWARDS * probe_forward_seconds(model, x, normalizer=None, device=device)
