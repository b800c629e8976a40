"""Random search: the baseline every other strategy has to beat (Li and Talwalkar, 2019)."""

from __future__ import annotations

from dataclasses import dataclass

from . import register_strategy
from .multitrial import MultiTrialStrategy


@register_strategy("random", "Random search: uniformly sampled architectures, each trained "
                   "briefly (multi-trial; any space)")
@dataclass
class RandomSearch(MultiTrialStrategy):
    name = "random"
