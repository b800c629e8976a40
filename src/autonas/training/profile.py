"""Model cost: parameters, FLOPs and measured latency (for reports, constraints, trials)."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs for one input of ``input_shape`` (C, H, W), counted by PyTorch's
    FlopCounterMode (a multiply-add counts as 2)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, *input_shape, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def measure_latency(model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 1,
                    repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds per forward pass of a ``batch_size`` batch, in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(batch_size, *input_shape, device=device).contiguous(
        memory_format=torch.channels_last)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    model.train(was_training)
    return statistics.median(times)


def profile_model(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, float | int]:
    return {
        "params": count_params(model),
        "flops": count_flops(model, input_shape),
        "latency_ms": 1000 * measure_latency(model, input_shape),
    }
