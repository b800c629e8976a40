"""How much slower the machine runs now than when the run started.

A run's later phases plan from their own first epochs, so a machine that got busy before
retraining began (other processes on the same cores) shows in no epoch time. A fixed small
workload, timed at the start of the run and again when retraining plans its epochs, tells:
the ratio of the two is how many times slower the machine has become.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F


def reference_seconds(repeats: int = 5) -> float:
    """Median seconds of a fixed training-like workload (a 3x3 convolution's forward and
    backward pass on a 32x16x16x16 batch) with the process's current thread settings."""
    generator = torch.Generator().manual_seed(0)  # never touches the global random state
    x = torch.randn(32, 16, 16, 16, generator=generator)
    w = torch.randn(16, 16, 3, 3, generator=generator, requires_grad=True)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        F.conv2d(x, w, padding=1).square().mean().backward()
        if i:  # the first pass pays one-off costs
            times.append(time.perf_counter() - start)
    return statistics.median(times)


class MachineSpeed:
    """The reference time at the run's start; ``slowdown()`` times it again."""

    def __init__(self, reference: float | None = None) -> None:
        self.reference = reference_seconds() if reference is None else reference

    def slowdown(self) -> float:
        """Now over the start: 1.0 = as fast as at the start, 3.0 = three times slower."""
        return reference_seconds() / max(self.reference, 1e-9)
