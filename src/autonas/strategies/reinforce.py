"""REINFORCE (Williams, 1992) over the space's choices, as in the first NAS paper (Zoph and
Le, 2017) but with an independent categorical distribution per choice.

After each trial, the logits of the choices it made move by ``lr * (reward - baseline)``
times the gradient of their log-probability; the baseline is a moving average of the
rewards, so only better-than-usual architectures gain probability. A trial that failed or
broke a constraint gets the worst reward seen so far. The policy is replayed from the
trial history on resume.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..trials.study import INTERRUPTED
from . import register_strategy
from .base import SearchContext
from .multitrial import MultiTrialStrategy


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


@register_strategy("reinforce", "REINFORCE: a policy over the choices trained on the trials' "
                   "rewards with a moving-average baseline (multi-trial)")
@dataclass
class Reinforce(MultiTrialStrategy):
    lr: float = 1.0
    baseline_decay: float = 0.8

    name = "reinforce"
    needs_choices = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr <= 0:
            raise ConfigError(f"reinforce lr must be > 0, got {self.lr}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")

    def prepare(self, ctx: SearchContext) -> None:
        self.logits = {label: np.zeros(len(options)) for label, options in self.choices.items()}
        self.baseline: float | None = None
        self.worst: float | None = None

    def probabilities(self) -> dict[str, list[float]]:
        return {label: softmax(z).tolist() for label, z in self.logits.items()}

    def propose(self, rng: random.Random, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        values = {label: rng.choices(options, weights=softmax(self.logits[label]))[0]
                  for label, options in self.choices.items()}
        return self.space.from_choices(values)

    def observe(self, row: dict[str, Any]) -> None:
        reward = self.fitness(row)
        if reward is None:
            error = str(row.get("error") or "")
            if self.worst is None or error == INTERRUPTED or error.startswith("budget"):
                return
            reward = self.worst
        self.worst = reward if self.worst is None else min(self.worst, reward)
        if self.baseline is None:
            self.baseline = reward
            return
        advantage = reward - self.baseline
        values = self.space.to_choices(row["arch"])
        for label, options in self.choices.items():
            grad = -softmax(self.logits[label])
            grad[options.index(values[label])] += 1.0
            self.logits[label] += self.lr * advantage * grad
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
