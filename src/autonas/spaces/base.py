"""What every search space offers: sample, validate and build an architecture.

An architecture is plain JSON (a dict). Multi-trial strategies only ``sample`` and
``build``; one-shot strategies also need a supernet, which cell spaces provide. The
pipeline ``build``s the final network from the architecture a strategy returns, so a
space, not the pipeline, knows what its architectures mean.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn


@dataclass
class BuildSpec:
    """What a space needs to know about the data and the wanted size to build a network."""

    in_channels: int
    num_classes: int
    image_size: int
    channels: int = 16
    layers: int = 8
    auxiliary: bool = False
    dropout: float = 0.0


class SearchSpace(ABC):
    """Base class of search spaces; subclasses register under a name (see ``spaces``)."""

    name: ClassVar[str] = "space"

    @abstractmethod
    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A uniformly random architecture."""

    @abstractmethod
    def validate(self, arch: dict[str, Any]) -> dict[str, Any]:
        """The architecture in canonical form; ConfigError naming what is wrong if invalid."""

    @abstractmethod
    def build(self, arch: dict[str, Any], spec: BuildSpec) -> nn.Module:
        """The network ``arch`` describes, freshly initialised (for retraining)."""

    def options(self) -> dict[str, Any]:
        """Constructor options that rebuild this space (saved in config.yaml / model.json)."""
        return {}

    def describe(self, arch: dict[str, Any]) -> str:
        return str(arch)
