"""Device choice, seeding and the CPU/GPU execution settings measured to be fastest."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from ..errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use "
                          "--device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def configure_threads(threads: int | None = None) -> int:
    """Intra-op threads: ``threads`` or $AUTONAS_THREADS if given, else PyTorch's default
    (one per physical core). Fewer threads help on a machine busy with other work: there a
    thread per core makes the small ops of a supernet wait on each other (measured 4-9x
    slower per search epoch with two threads on two busy cores, against one thread)."""
    n = threads or int(os.environ.get("AUTONAS_THREADS", 0))
    if n:
        torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def seed_everything(seed: int) -> torch.Generator:
    """Seed the global RNGs (weight init) and return a generator for data order/augment."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """channels_last on every device: on CPU it makes the depthwise-conv backward 5-10x
    faster (benchmarks/step.py measures it); on GPU it feeds the tensor cores."""
    return module.to(memory_format=torch.channels_last)


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA; plain float32 on CPU (bf16 is slower than fp32 on most CPUs)."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
