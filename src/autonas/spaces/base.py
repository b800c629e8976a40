"""What every search space offers: sample, validate and build an architecture.

An architecture is plain JSON (a dict). Multi-trial strategies only ``sample`` and
``build``; one-shot strategies also need a supernet, which cell spaces provide. The
pipeline ``build``s the final network from the architecture a strategy returns, so a
space, not the pipeline, knows what its architectures mean.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
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
    head: str = "softmax"
    """How the outputs are read (``training.tasks``): ``coral`` builds the network with one
    output and puts the ordinal head on it (see :func:`build_network`)."""


def build_network(space: SearchSpace, arch: dict[str, Any], spec: BuildSpec) -> nn.Module:
    """``space.build`` with the output head ``spec`` asks for: an ordinal (CORAL) network is
    the space's network with a single output unit under a :class:`CoralHead`."""
    if spec.head != "coral":
        return space.build(arch, spec)
    from ..training.tasks import CoralHead

    base = space.build(arch, replace(spec, num_classes=1, head="softmax"))
    return CoralHead(base, spec.num_classes)


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

    def choices(self) -> dict[str, list[Any]]:
        """A flat, categorical view of the space: label -> candidate values (int, float, str
        or bool). Grid, evolution, REINFORCE and TPE search in this view; ``from_choices``
        turns a point of it back into an architecture."""
        raise NotImplementedError(f"{type(self).__name__} offers no categorical view")

    def from_choices(self, values: dict[str, Any]) -> dict[str, Any]:
        """The architecture for one value per label of ``choices()``."""
        return dict(values)

    def to_choices(self, arch: dict[str, Any]) -> dict[str, Any]:
        """Inverse of ``from_choices``."""
        return dict(arch)

    def default_arch(self) -> dict[str, Any] | None:
        """A documented, sensible architecture to train when a search could not choose one
        (e.g. the budget stopped it before it learned anything); None: the space has none."""
        return None

    def train_overrides(self, arch: dict[str, Any]) -> dict[str, Any]:
        """Training options (``TrainConfig`` field -> value) that ``arch`` chooses, for
        spaces searched jointly with hyperparameters; trials and the retrain apply them."""
        return {}

    def options(self) -> dict[str, Any]:
        """Constructor options that rebuild this space (saved in config.yaml / model.json)."""
        return {}

    def describe(self, arch: dict[str, Any]) -> str:
        return str(arch)
