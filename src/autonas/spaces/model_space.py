"""``ModelSpace``: a search space written as a PyTorch module with mutables in it (NNI-style).

    class MySpace(ModelSpace):
        def __init__(self, input_channels=1, num_classes=2):
            super().__init__()
            self.block = LayerChoice([BlockA(input_channels), BlockB(input_channels)],
                                     label="block")
            feature = choice("feature", [64, 128])
            self.fc1 = MutableLinear(32 * 14 * 14, feature)
            self.fc2 = MutableLinear(feature, num_classes)

        def forward(self, x): ...

The instance is the space: ``sample``, ``validate``, ``freeze`` (an ordinary module), the
flat categorical view for multi-trial strategies, and ``build`` for the data at hand.
Constructor arguments are recorded automatically, so ``make_space`` can rebuild any space
from ``options()``.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .base import BuildSpec, SearchSpace
from .cell import Cell
from .mutables import (
    Choice,
    ChosenInputs,
    Decision,
    InputChoice,
    LayerChoice,
    Mutable,
    MutableBatchNorm2d,
    MutableConv2d,
    MutableLinear,
    Parametrized,
    Repeat,
    ValueExpr,
    choice,
    collect_decisions,
    freeze_module,
    has_mutables,
    n_architectures,
    uniform_arch,
)

_OPTIONS_ATTR = "_space_options"
_CHANNEL_ARGS = ("input_channels", "in_channels")
_CLASS_ARGS = ("num_classes", "n_classes")
_SIZE_ARGS = ("image_size",)


def _capture_options(init: Any) -> Any:
    """Wrap a subclass ``__init__`` so the outermost call records its arguments."""

    @functools.wraps(init)
    def wrapped(self: ModelSpace, *args: Any, **kwargs: Any) -> None:
        outermost = _OPTIONS_ATTR not in self.__dict__
        if outermost:
            object.__setattr__(self, _OPTIONS_ATTR, _bind_options(init, self, args, kwargs))
        init(self, *args, **kwargs)
        if outermost:
            collect_decisions(self)  # assigns labels now; duplicate labels fail at construction

    return wrapped


def _bind_options(init: Any, self: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    sig = inspect.signature(init)
    try:
        bound = sig.bind(self, *args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{type(self).__name__}: {exc}") from None
    bound.apply_defaults()
    options: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        kind = sig.parameters[name].kind
        if i == 0 or kind is inspect.Parameter.VAR_POSITIONAL:
            continue  # self; *args cannot be passed back by name
        if kind is inspect.Parameter.VAR_KEYWORD:
            options.update(value)
        else:
            options[name] = value
    return options


def dry_run(module: nn.Module, in_channels: int, image_size: int, what: str,
            call: Callable[[torch.Tensor], Any] | None = None) -> None:
    """Run ``module`` once on zeros shaped like the data, so a space that does not fit the
    data fails here with a ConfigError rather than deep inside training."""
    param = next(module.parameters(), None)
    x = torch.zeros(2, in_channels, image_size, image_size,
                    device=None if param is None else param.device)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            (call or module)(x)
    except ConfigError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise ConfigError(
            f"{what} does not run on {in_channels}x{image_size}x{image_size} inputs: {exc}. "
            "Make its layers follow the input (e.g. adaptive pooling before the first "
            "Linear, or an image_size constructor argument)") from None
    finally:
        module.train(was_training)


class ModelSpace(nn.Module, SearchSpace):
    """Base class of user model spaces. Subclasses call ``super().__init__()`` first and
    define ``forward`` as for any module; nothing else is needed."""

    name: ClassVar[str] = "model"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _capture_options(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(self) -> None:
        nn.Module.__init__(self)

    # -- decisions ----------------------------------------------------------------------
    def decisions(self) -> list[Decision]:
        """Every decision of the space, in definition order."""
        return collect_decisions(self)

    def labels(self) -> list[str]:
        return [d.label for d in self.decisions()]

    def size(self) -> int:
        """How many architectures the space holds."""
        return n_architectures(self.decisions())

    def default_arch(self) -> dict[str, Any]:
        """The first value of every decision: what the unfrozen space computes."""
        return {d.label: d.default for d in self.decisions()}

    # -- SearchSpace ----------------------------------------------------------------------
    def sample(self, rng: random.Random) -> dict[str, Any]:
        return uniform_arch(self.decisions(), rng)

    def validate(self, arch: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(arch, dict):
            raise ConfigError(f"an architecture of {type(self).__name__} is a JSON object "
                              f"(label -> value), got {type(arch).__name__}")
        decisions = self.decisions()
        labels = [d.label for d in decisions]
        unknown = [k for k in arch if k not in labels]
        if unknown:
            raise ConfigError(f"unknown label(s) {unknown} for {type(self).__name__}; its "
                              f"labels are {labels}")
        missing = [k for k in labels if k not in arch]
        if missing:
            raise ConfigError(f"the architecture has no value for {missing}; "
                              f"{type(self).__name__} needs one for each of {labels}")
        return {d.label: d.canonical(arch[d.label]) for d in decisions}

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        """An ordinary module (no mutables left) for ``arch``, keeping this space's
        weights for what it keeps (LayerChoice candidates, slices of mutable layers)."""
        return freeze_module(self, self.validate(arch))

    def build(self, arch: dict[str, Any], spec: BuildSpec) -> nn.Module:
        """A fresh network for ``arch`` sized for the data of ``spec``."""
        space = self.adapted(spec.in_channels, spec.num_classes, spec.image_size)
        model = space.freeze(arch)
        dry_run(model, spec.in_channels, spec.image_size, f"{type(self).__name__} {arch}")
        return model

    def adapted(self, in_channels: int, num_classes: int, image_size: int) -> ModelSpace:
        """A new instance for the data: constructor arguments named ``input_channels`` /
        ``in_channels``, ``num_classes`` / ``n_classes`` and ``image_size`` take the
        data's values; the other options stay."""
        params = inspect.signature(type(self)).parameters
        options = self.options()
        for names, value in ((_CHANNEL_ARGS, in_channels), (_CLASS_ARGS, num_classes),
                             (_SIZE_ARGS, image_size)):
            for n in names:
                if n in params:
                    options[n] = value
        return type(self)(**options)

    def options(self) -> dict[str, Any]:
        return dict(self.__dict__.get(_OPTIONS_ATTR, {}))

    def choices(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for d in self.decisions():
            if d.kind == "input":
                out[d.label] = [",".join(map(str, c)) for c in d.options()]
            else:
                out[d.label] = d.options()
        return out

    def from_choices(self, values: dict[str, Any]) -> dict[str, Any]:
        arch = dict(values)
        for d in self.decisions():
            if d.kind == "input" and isinstance(arch.get(d.label), str):
                text = arch[d.label]
                try:
                    arch[d.label] = [int(i) for i in text.split(",")] if text else []
                except ValueError:
                    raise ConfigError(f"{d.label!r}: expected input indices like '0,2', got "
                                      f"{text!r}") from None
        return self.validate(arch)

    def to_choices(self, arch: dict[str, Any]) -> dict[str, Any]:
        arch = self.validate(arch)
        return {d.label: ",".join(map(str, arch[d.label])) if d.kind == "input"
                else arch[d.label] for d in self.decisions()}

    def describe(self, arch: dict[str, Any]) -> str:
        arch = self.validate(arch)
        return ", ".join(d.describe(arch[d.label]) for d in self.decisions())


__all__ = [
    "Cell",
    "Choice",
    "ChosenInputs",
    "Decision",
    "InputChoice",
    "LayerChoice",
    "ModelSpace",
    "Mutable",
    "MutableBatchNorm2d",
    "MutableConv2d",
    "MutableLinear",
    "Parametrized",
    "Repeat",
    "ValueExpr",
    "choice",
    "dry_run",
    "freeze_module",
    "has_mutables",
]
