"""A toy search space whose best answer is known, and data for it.

Only the ``signal`` op looks at the image; ``noise`` and ``const`` see noise or nothing, so
their validation AUC stays near 0.5 while ``signal`` reaches ~1 on ``arrays`` data (class 1
images are bright). ``boom`` cannot be built and ``nan`` outputs NaN (failing trials);
``slow`` seconds of sleep per training step make trials last long enough to kill one.
The CLI loads it as ``tests/toy_space.py:ToySpace``, as it would a user's space.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from autonas.errors import ConfigError
from autonas.spaces.base import SearchSpace


class Signal(nn.Module):
    def __init__(self, c, k, width, slow):
        super().__init__()
        self.slow = slow
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                 nn.Linear(c * 16, width), nn.ReLU(), nn.Linear(width, k))

    def forward(self, x):
        if self.training and self.slow:
            time.sleep(self.slow)
        return self.net(x)


class Blind(nn.Module):
    """Sees noise (or zeros) instead of the image: chance-level AUC."""

    def __init__(self, k, width, noise, slow=0.0):
        super().__init__()
        self.fc = nn.Linear(width, k)
        self.width, self.noise, self.slow = width, noise, slow

    def forward(self, x):
        if self.training and self.slow:
            time.sleep(self.slow)
        n = x.shape[0]
        z = torch.randn(n, self.width) if self.noise else torch.zeros(n, self.width)
        return self.fc(z)


class Nan(Blind):
    def forward(self, x):
        return super().forward(x) * float("nan")


class ToySpace(SearchSpace):
    name = "toy"

    def __init__(self, ops=("noise", "const", "signal"), widths=(2, 8), slow=0.0):
        self.ops, self.widths, self.slow = list(ops), list(widths), slow

    def options(self):
        return {"ops": self.ops, "widths": self.widths, "slow": self.slow}

    def choices(self):
        return {"op": list(self.ops), "width": list(self.widths)}

    def sample(self, rng):
        return {"op": rng.choice(self.ops), "width": rng.choice(self.widths)}

    def validate(self, arch):
        for label, options in self.choices().items():
            if arch.get(label) not in options:
                raise ConfigError(f"{label} must be one of {options}, got {arch.get(label)!r}")
        return {"op": arch["op"], "width": arch["width"]}

    def build(self, arch, spec):
        op, width = arch["op"], arch["width"]
        if op == "boom":
            raise RuntimeError("boom: this op cannot be built")
        if op == "nan":
            return Nan(spec.num_classes, width, True)
        if op == "signal":
            return Signal(spec.in_channels, spec.num_classes, width, self.slow)
        return Blind(spec.num_classes, width, op == "noise", self.slow)


def arrays(n: int, seed: int, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images, half of them (class 1) brighter by 100."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(0, 100, size=(n, size, size)).astype(np.uint8)
    x[y == 1] += 100
    return x, y


def write_npz(path, size: int = 16):
    """A tiny dataset in the MedMNIST layout."""
    splits = {"train": arrays(48, 0, size), "val": arrays(24, 1, size),
              "test": arrays(24, 2, size)}
    np.savez(path, **{f"{s}_{k}": v if k == "images" else v.reshape(-1, 1)
                      for s, (x, y) in splits.items()
                      for k, v in (("images", x), ("labels", y))})
    return path
