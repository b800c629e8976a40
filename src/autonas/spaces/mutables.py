"""Building blocks of model spaces (NNI-style): modules with decisions in them.

A model space is an ordinary PyTorch module whose constructor puts mutables where a
design decision is open: ``LayerChoice`` (one of several modules), ``choice`` (a value:
width, kernel size, rate, activation name), ``InputChoice`` (which inputs to combine, by
``sum``, ``mean``, ``concat`` or ``none``), ``Repeat`` (how many blocks) and width-mutable
``MutableLinear`` / ``MutableConv2d`` / ``MutableBatchNorm2d``. ``Parametrized`` turns
any module constructor with value choices among its arguments into a mutable. Arithmetic
on choices (``width * 2``, ``kernel // 2``, ``kernel.map(fn)``) gives derived values,
accepted wherever a choice is and computed from the original choices (the only
decisions) at freeze time.

Every decision has a label; an architecture maps each label to a value (plain JSON).
``freeze_module`` turns a module holding mutables into an ordinary module with none left.
Run unfrozen, a mutable behaves as the default architecture (the first value of every
decision), so a space can be called directly to check shapes.
"""

from __future__ import annotations

import copy
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

Value = int | float | str | bool


# ----------------------------------------------------------------------------- decisions


class ValueExpr:
    """A value decided by one or more choices: a ``Choice`` itself, or arithmetic on
    choices (``feature * 2``, ``kernel // 2``, ``a + b``, ``kernel.map(fn)``).

    Only the original choices are decisions (their labels are the architecture's keys);
    a derived value is computed from them when the space is frozen. Accepted wherever a
    choice is (``MutableConv2d``, ``MutableLinear``, ``MutableBatchNorm2d``,
    ``Parametrized``)."""

    def sources(self) -> list[Choice]:
        """The choices this value depends on, in first-use order, each once."""
        raise NotImplementedError

    def evaluate_with(self, pick: Callable[[Choice], Value]) -> Value:
        raise NotImplementedError

    def evaluate(self, arch: dict[str, Any] | None = None) -> Value:
        """The value for ``arch`` (label -> value); None: every choice at its default."""
        if arch is None:
            return self.evaluate_with(lambda c: c.default)
        return self.evaluate_with(lambda c: arch[c.label])

    @property
    def values(self) -> list[Value]:
        """Every value this can take, in the order of its choices' values, each once."""
        out: list[Value] = []
        sources = self.sources()
        for combo in itertools.product(*(c.values for c in sources)):
            picked = {id(c): v for c, v in zip(sources, combo)}
            v = self.evaluate_with(lambda c, picked=picked: picked[id(c)])
            if not any(_same_value(v, w) for w in out):
                out.append(v)
        return out

    @property
    def default(self) -> Value:
        return self.evaluate(None)

    def map(self, fn: Callable[..., Value], name: str | None = None) -> Derived:
        """``fn`` applied to this value, e.g. ``kernel.map(lambda k: (k - 1) // 2)``."""
        return Derived(fn, (self,), f"{getattr(fn, '__name__', 'fn') if name is None else name}"
                                    f"({self!r})")

    def _op(self, other: Any, fn: Callable[[Any, Any], Any], sym: str,
            reverse: bool = False) -> Derived:
        if not isinstance(other, (ValueExpr, int, float)) or isinstance(other, bool):
            return NotImplemented  # type: ignore[return-value]
        a, b = (other, self) if reverse else (self, other)
        return Derived(fn, (a, b), f"({a!r} {sym} {b!r})")

    def __add__(self, o: Any) -> Derived:
        return self._op(o, operator.add, "+")

    def __radd__(self, o: Any) -> Derived:
        return self._op(o, operator.add, "+", reverse=True)

    def __sub__(self, o: Any) -> Derived:
        return self._op(o, operator.sub, "-")

    def __rsub__(self, o: Any) -> Derived:
        return self._op(o, operator.sub, "-", reverse=True)

    def __mul__(self, o: Any) -> Derived:
        return self._op(o, operator.mul, "*")

    def __rmul__(self, o: Any) -> Derived:
        return self._op(o, operator.mul, "*", reverse=True)

    def __floordiv__(self, o: Any) -> Derived:
        return self._op(o, operator.floordiv, "//")

    def __rfloordiv__(self, o: Any) -> Derived:
        return self._op(o, operator.floordiv, "//", reverse=True)

    def __truediv__(self, o: Any) -> Derived:
        return self._op(o, operator.truediv, "/")

    def __mod__(self, o: Any) -> Derived:
        return self._op(o, operator.mod, "%")

    def __neg__(self) -> Derived:
        return Derived(operator.neg, (self,), f"-{self!r}")


class Choice(ValueExpr):
    """A categorical value decision. Pass the same object to several modules to make them
    one decision (e.g. the width of fc1's output and fc2's input)."""

    def __init__(self, label: str | None, values: Sequence[Value]) -> None:
        if label is not None and (not isinstance(label, str) or not label):
            raise ConfigError(f"a choice label must be a non-empty string, got {label!r}")
        values = list(values)
        if not values:
            raise ConfigError(f"choice {label!r} has no values; give at least one")
        for v in values:
            if not isinstance(v, (int, float, str, bool)):
                raise ConfigError(f"choice {label!r}: values must be int, float, str or bool "
                                  f"(plain JSON), got {v!r}")
        for i, v in enumerate(values):
            if any(_same_value(v, w) for w in values[:i]):
                raise ConfigError(f"choice {label!r} lists {v!r} twice: {values}")
        self.label = label
        self._values = values

    @property
    def values(self) -> list[Value]:
        return self._values

    @property
    def default(self) -> Value:
        return self._values[0]

    def sources(self) -> list[Choice]:
        return [self]

    def evaluate_with(self, pick: Callable[[Choice], Value]) -> Value:
        return pick(self)

    def __repr__(self) -> str:
        return f"choice({self.label!r}, {self._values!r})"


class Derived(ValueExpr):
    """A value computed from choices (and constants) by ``fn`` when the space is frozen."""

    def __init__(self, fn: Callable[..., Any], operands: Sequence[Any], text: str) -> None:
        self.fn = fn
        self.operands = tuple(operands)
        self.text = text

    def sources(self) -> list[Choice]:
        out: list[Choice] = []
        for o in self.operands:
            if isinstance(o, ValueExpr):
                out += [c for c in o.sources() if all(c is not d for d in out)]
        return out

    def evaluate_with(self, pick: Callable[[Choice], Value]) -> Value:
        args = [o.evaluate_with(pick) if isinstance(o, ValueExpr) else o for o in self.operands]
        return self.fn(*args)

    def __repr__(self) -> str:
        return self.text


def choice(label: str, values: Sequence[Value]) -> Choice:
    """A value decision: ``feature = choice('feature', [64, 128])``."""
    return Choice(label, values)


def _same_value(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 and '1' apart from 1 (JSON round trips)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b


@dataclass(frozen=True)
class Decision:
    """One label of a space: ``kind`` is ``layer`` (a LayerChoice: index or name),
    ``value`` (a Choice) or ``input`` (an InputChoice: ``n_chosen`` of ``values``)."""

    label: str
    kind: str
    values: tuple
    n_chosen: int = 1
    names: tuple[str, ...] = ()
    """What each value means, for ``describe`` (candidate class names of a LayerChoice)."""

    @property
    def default(self) -> Any:
        if self.kind == "input":
            return list(self.values[: self.n_chosen])
        return self.values[0]

    def options(self) -> list[Any]:
        """Every value this decision can take, in arch-dict form."""
        if self.kind == "input":
            return [list(c) for c in itertools.combinations(self.values, self.n_chosen)]
        return list(self.values)

    def canonical(self, value: Any) -> Any:
        """``value`` in canonical form; ConfigError if it is not among the choices."""
        if self.kind == "input":
            return self._canonical_inputs(value)
        if self.kind == "layer" and self.names and isinstance(value, int) \
                and not isinstance(value, bool) and 0 <= value < len(self.values):
            return self.values[value]  # an index into named candidates: accept, give the name
        for v in self.values:
            if _same_value(value, v):
                return v
        raise ConfigError(f"{self.label!r}: {value!r} is not among its choices "
                          f"{list(self.values)}")

    def _canonical_inputs(self, value: Any) -> list[int]:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in value)
        if not ok:
            raise ConfigError(f"{self.label!r}: expected a list of {self.n_chosen} input "
                              f"indices, got {value!r}")
        chosen = sorted(value)
        if len(chosen) != self.n_chosen or len(set(chosen)) != len(chosen):
            raise ConfigError(f"{self.label!r}: choose exactly {self.n_chosen} distinct "
                              f"input(s), got {list(value)}")
        if chosen and (chosen[0] < 0 or chosen[-1] >= len(self.values)):
            raise ConfigError(f"{self.label!r}: input indices must be in "
                              f"0..{len(self.values) - 1}, got {list(value)}")
        return chosen

    def describe(self, value: Any) -> str:
        if self.kind == "layer" and not isinstance(value, str) and self.names:
            return f"{self.label}={self.names[value]}"
        return f"{self.label}={value}"


# ----------------------------------------------------------------------------- base


class Mutable(nn.Module):
    """A module with open decisions. Subclasses implement ``decisions_here`` (their own
    decisions, not those of mutables nested inside them) and ``freeze``."""

    label: str | None = None

    def decisions_here(self) -> list[tuple[object, Decision]]:
        """(owner, decision) pairs; one owner object per label makes a label one decision."""
        raise NotImplementedError

    def value_choices(self) -> list[Choice]:
        """The Choice objects this module reads (shared between copies of a block)."""
        return []

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        """An ordinary module for ``arch`` (which holds a value for every label)."""
        raise NotImplementedError

    def assign_label(self, path: str) -> None:
        """Unlabelled mutables are named after where they sit in the space: stable."""
        if self.label is None:
            self.label = path or type(self).__name__.lower()


def replace_mutables(module: nn.Module, replace: Callable[[Mutable], nn.Module]) -> nn.Module:
    """A deep copy of ``module`` with every outermost mutable swapped for ``replace(m)``.

    Only what is kept is copied: a LayerChoice's unchosen candidates never are.
    """
    if isinstance(module, Mutable):
        return replace(module)
    memo: dict[int, Any] = {}
    for child in module.children():
        memo[id(child)] = replace_mutables(child, replace)
    return copy.deepcopy(module, memo)


def freeze_module(module: nn.Module, arch: dict[str, Any]) -> nn.Module:
    """``module`` with every mutable replaced by what ``arch`` chooses (weights copied)."""
    return replace_mutables(module, lambda m: m.freeze(arch))


def has_mutables(module: nn.Module) -> bool:
    return any(isinstance(m, Mutable) for m in module.modules())


def _resolve(value: Any, arch: dict[str, Any] | None) -> Any:
    """A plain value as is; a choice or derived value for ``arch`` (None: the defaults)."""
    if isinstance(value, ValueExpr):
        return value.evaluate(arch)
    return value


def sources_of(*values: Any) -> list[Choice]:
    """The choices behind ``values`` (choices and derived values), each once, in order."""
    out: list[Choice] = []
    for v in values:
        if isinstance(v, ValueExpr):
            out += [c for c in v.sources() if all(c is not d for d in out)]
    return out


def _choice_decisions(*values: Any) -> list[tuple[object, Decision]]:
    return [(c, Decision(c.label, "value", tuple(c.values))) for c in sources_of(*values)]


def _max_size(value: int | ValueExpr, what: str) -> int:
    values = value.values if isinstance(value, ValueExpr) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{what} must be positive ints (or a choice of them), got {value!r}")
    return max(values)


# ----------------------------------------------------------------------------- LayerChoice


class LayerChoice(Mutable):
    """One of several candidate modules. Candidates given as a dict are chosen by name,
    a list by index."""

    def __init__(self, candidates: Sequence[nn.Module] | dict[str, nn.Module],
                 label: str | None = None) -> None:
        super().__init__()
        if isinstance(candidates, dict):
            names = [str(k) for k in candidates]
            modules = list(candidates.values())
            bad = [n for n in names if not n or "." in n]
            if bad:
                raise ConfigError(f"LayerChoice {label!r}: candidate names must be non-empty "
                                  f"and have no '.', got {bad}")
        else:
            modules = list(candidates)
            names = None
        if not modules:
            raise ConfigError(f"LayerChoice {label!r} has no candidates")
        for m in modules:
            if not isinstance(m, nn.Module):
                raise ConfigError(f"LayerChoice {label!r}: candidates must be nn.Module "
                                  f"instances, got {type(m).__name__}")
        self.label = label
        self.names = names
        keys = names if names is not None else [str(i) for i in range(len(modules))]
        self.candidates = nn.ModuleDict(dict(zip(keys, modules)))

    def __len__(self) -> int:
        return len(self.candidates)

    def __getitem__(self, key: int | str) -> nn.Module:
        return self.candidates[str(key)]

    @property
    def values(self) -> list[int | str]:
        return list(self.names) if self.names is not None else list(range(len(self)))

    def decisions_here(self) -> list[tuple[object, Decision]]:
        names = tuple(type(m).__name__ for m in self.candidates.values())
        return [(self, Decision(self.label, "layer", tuple(self.values), names=names))]

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        return freeze_module(self.candidates[str(arch[self.label])], arch)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.candidates[str(self.values[0])](*args, **kwargs)


# ----------------------------------------------------------------------------- InputChoice


REDUCTIONS = ("sum", "mean", "concat", "none")


def reduce_inputs(tensors: list[torch.Tensor], reduction: str) -> Any:
    """Combine the chosen inputs: ``sum``, ``mean``, ``concat`` (channels, dim 1) or
    ``none`` (the list itself)."""
    if reduction == "none":
        return list(tensors)
    if reduction == "concat":
        return torch.cat(tensors, dim=1)
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out / len(tensors) if reduction == "mean" else out


class ChosenInputs(nn.Module):
    """The frozen InputChoice: the chosen inputs, reduced."""

    def __init__(self, indices: Sequence[int], reduction: str = "sum") -> None:
        super().__init__()
        self.indices = list(indices)
        self.reduction = reduction

    def forward(self, inputs: Sequence[torch.Tensor]) -> Any:
        return reduce_inputs([inputs[i] for i in self.indices], self.reduction)

    def current_indices(self) -> list[int]:
        return list(self.indices)

    def extra_repr(self) -> str:
        return f"indices={self.indices}, reduction={self.reduction!r}"


class InputChoice(Mutable):
    """Choose ``n_chosen`` of ``n_candidates`` inputs; the forward takes the list of all
    candidate tensors and reduces the chosen ones: ``reduction`` is ``sum`` (default),
    ``mean``, ``concat`` (along channels) or ``none`` (a list of the chosen tensors), as
    in NNI."""

    def __init__(self, n_candidates: int, n_chosen: int = 1, reduction: str = "sum",
                 label: str | None = None) -> None:
        super().__init__()
        if not (isinstance(n_candidates, int) and n_candidates >= 1):
            raise ConfigError(f"InputChoice {label!r}: n_candidates must be >= 1, "
                              f"got {n_candidates!r}")
        if not (isinstance(n_chosen, int) and 1 <= n_chosen <= n_candidates):
            raise ConfigError(f"InputChoice {label!r}: n_chosen must be in 1..{n_candidates}, "
                              f"got {n_chosen!r}")
        if reduction not in REDUCTIONS:
            raise ConfigError(f"InputChoice {label!r}: reduction must be one of "
                              f"{', '.join(REDUCTIONS)}, got {reduction!r}")
        self.n_candidates = n_candidates
        self.n_chosen = n_chosen
        self.reduction = reduction
        self.label = label

    def decisions_here(self) -> list[tuple[object, Decision]]:
        return [(self, Decision(self.label, "input", tuple(range(self.n_candidates)),
                                n_chosen=self.n_chosen))]

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        return ChosenInputs(arch[self.label], self.reduction)

    def check_inputs(self, inputs: Sequence[torch.Tensor]) -> None:
        if len(inputs) != self.n_candidates:
            raise ValueError(f"InputChoice {self.label!r} expects {self.n_candidates} inputs, "
                             f"got {len(inputs)}")

    def current_indices(self) -> list[int]:
        """The inputs the unfrozen module reads: the default, the first ``n_chosen``."""
        return list(range(self.n_chosen))

    def forward(self, inputs: Sequence[torch.Tensor]) -> Any:
        self.check_inputs(inputs)
        return ChosenInputs(range(self.n_chosen), self.reduction)(inputs)


# ----------------------------------------------------------------------------- Repeat


class Repeat(Mutable):
    """A stack of blocks whose depth is a decision.

    ``blocks``: a callable taking the block index (``lambda i: Block(...)``), a module
    (deep-copied for each position; copies share its value choices) or a list of modules.
    ``depth``: an int (fixed), a Choice, or ``(min, max)`` inclusive.
    """

    def __init__(self, blocks: Callable[[int], nn.Module] | nn.Module | Sequence[nn.Module],
                 depth: int | Choice | tuple[int, int], label: str | None = None) -> None:
        super().__init__()
        if isinstance(depth, tuple):
            if len(depth) != 2 or depth[0] > depth[1]:
                raise ConfigError(f"Repeat {label!r}: depth range must be (min, max), "
                                  f"got {depth!r}")
            depth = Choice(label, list(range(depth[0], depth[1] + 1)))
        elif isinstance(depth, ValueExpr) and not isinstance(depth, Choice):
            raise ConfigError(f"Repeat {label!r}: the depth must be an int, (min, max) or a "
                              f"choice, not a derived value ({depth!r}); use a choice of the "
                              "depths themselves")
        elif isinstance(depth, Choice) and label not in (None, depth.label):
            raise ConfigError(f"Repeat label {label!r} differs from its depth choice's "
                              f"label {depth.label!r}; leave one of them out")
        depths = depth.values if isinstance(depth, Choice) else [depth]
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in depths):
            raise ConfigError(f"Repeat {label!r}: depths must be ints >= 0, got {depths!r}")
        self.depth = depth
        n = max(depths)
        if isinstance(blocks, nn.Module):
            shared = {id(c): c for m in blocks.modules() if isinstance(m, Mutable)
                      for c in m.value_choices()}
            made = [blocks] + [copy.deepcopy(blocks, dict(shared)) for _ in range(n - 1)]
        elif callable(blocks):
            made = [blocks(i) for i in range(n)]
        else:
            made = list(blocks)
            if len(made) < n:
                raise ConfigError(f"Repeat {label!r}: {len(made)} blocks given for a depth of "
                                  f"up to {n}")
        for m in made:
            if not isinstance(m, nn.Module):
                raise ConfigError(f"Repeat {label!r}: blocks must be nn.Module, got "
                                  f"{type(m).__name__}")
        self.blocks = nn.ModuleList(made[:n])

    @property
    def label(self) -> str | None:  # type: ignore[override]
        return self.depth.label if isinstance(self.depth, Choice) else None

    @property
    def depths(self) -> list[int]:
        return list(self.depth.values) if isinstance(self.depth, Choice) else [self.depth]

    def assign_label(self, path: str) -> None:
        if isinstance(self.depth, Choice) and self.depth.label is None:
            self.depth.label = path or "repeat"

    def value_choices(self) -> list[Choice]:
        return [self.depth] if isinstance(self.depth, Choice) else []

    def decisions_here(self) -> list[tuple[object, Decision]]:
        return _choice_decisions(self.depth)

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        depth = _resolve(self.depth, arch)
        return nn.Sequential(*(freeze_module(b, arch) for b in self.blocks[:depth]))

    def forward(self, x: Any) -> Any:
        for block in self.blocks[: _resolve(self.depth, None)]:
            x = block(x)
        return x


# ----------------------------------------------------------------------------- widths


class MutableLinear(Mutable):
    """``nn.Linear`` whose sizes may be choices. One weight of the largest size; a width
    ``w`` uses its first ``w`` rows (and the first ``in`` columns the input has)."""

    def __init__(self, in_features: int | ValueExpr, out_features: int | ValueExpr,
                 bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        full = nn.Linear(_max_size(in_features, "MutableLinear in_features"),
                         _max_size(out_features, "MutableLinear out_features"), bias=bias)
        self.weight = full.weight
        self.bias = full.bias

    def value_choices(self) -> list[Choice]:
        return sources_of(self.in_features, self.out_features)

    def decisions_here(self) -> list[tuple[object, Decision]]:
        return _choice_decisions(self.in_features, self.out_features)

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        n_in, n_out = _resolve(self.in_features, arch), _resolve(self.out_features, arch)
        linear = nn.Linear(n_in, n_out, bias=self.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(self.weight[:n_out, :n_in])
            if self.bias is not None:
                linear.bias.copy_(self.bias[:n_out])
        return linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_out = _resolve(self.out_features, None)
        bias = None if self.bias is None else self.bias[:n_out]
        n_in = x.shape[-1] if isinstance(self.in_features, ValueExpr) else self.weight.shape[1]
        return F.linear(x, self.weight[:n_out, :n_in], bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def same_padding(kernel_size: int, dilation: int) -> int:
    return dilation * (kernel_size - 1) // 2


class MutableConv2d(Mutable):
    """``nn.Conv2d`` whose channels, (square) kernel size and padding may be choices or
    values derived from them (``padding=kernel // 2``).

    One weight of the largest size: a width uses the first channels, a kernel size the
    centre of the largest kernel. A kernel-size choice needs every kernel to give the same
    output size: ``padding='same'`` (odd kernels; padding ``dilation * (k - 1) // 2``) or
    a padding derived from the kernel that keeps ``2 * padding - dilation * (k - 1)``
    constant. Channel choices need ``groups=1``.
    """

    def __init__(self, in_channels: int | ValueExpr, out_channels: int | ValueExpr,
                 kernel_size: int | ValueExpr, stride: int = 1,
                 padding: int | str | ValueExpr = 0, dilation: int = 1, groups: int = 1,
                 bias: bool = True) -> None:
        super().__init__()
        kernels = kernel_size.values if isinstance(kernel_size, ValueExpr) else [kernel_size]
        k_max = _max_size(kernel_size, "MutableConv2d kernel sizes")
        if not isinstance(padding, ValueExpr) and padding not in ("same", "valid") and \
                not (isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0):
            raise ConfigError(f"MutableConv2d padding must be an int >= 0, 'same', 'valid' or "
                              f"a choice (or value derived from one), got {padding!r}")
        if padding == "same" and any(k % 2 == 0 for k in kernels):
            raise ConfigError(f"padding='same' needs odd kernel sizes, got {kernels}")
        if groups != 1 and (isinstance(in_channels, ValueExpr)
                            or isinstance(out_channels, ValueExpr)):
            raise ConfigError("MutableConv2d with channel choices needs groups=1")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self._check_output_size()
        full = nn.Conv2d(_max_size(in_channels, "MutableConv2d in_channels"),
                         _max_size(out_channels, "MutableConv2d out_channels"), k_max,
                         stride=stride, dilation=dilation, groups=groups, bias=bias)
        self.weight = full.weight
        self.bias = full.bias

    def _check_output_size(self) -> None:
        """Every (kernel, padding) the choices allow must give the same output size, so the
        layers after it fit every architecture and the kernels can share one weight."""
        sources = sources_of(self.kernel_size, self.padding)
        if not sources:
            return
        growth: set[int] = set()
        pairs = []
        for combo in itertools.product(*(c.values for c in sources)):
            picked = {c.label if c.label is not None else id(c): v
                      for c, v in zip(sources, combo)}

            def pick(c: Choice, picked: dict = picked) -> Any:
                return picked[c.label if c.label is not None else id(c)]

            k = self.kernel_size.evaluate_with(pick) \
                if isinstance(self.kernel_size, ValueExpr) else self.kernel_size
            pad = self.padding.evaluate_with(pick) \
                if isinstance(self.padding, ValueExpr) else self.padding
            if isinstance(pad, bool) or not isinstance(pad, (int, str)) or \
                    (isinstance(pad, int) and pad < 0):
                raise ConfigError(f"MutableConv2d padding {self.padding!r} gives {pad!r}; it "
                                  "must give ints >= 0")
            p = self.pad_for_values(k, pad)
            growth.add(2 * p - self.dilation * (k - 1))
            pairs.append((k, p))
        if len(growth) > 1:
            hint = ("padding='same'" if not isinstance(self.padding, ValueExpr)
                    else "a padding such as kernel // 2")
            raise ConfigError(
                f"MutableConv2d kernel size {self.kernel_size!r} with padding "
                f"{self.padding!r} gives different output sizes for (kernel, padding) "
                f"{sorted(set(pairs))}; use {hint} so every kernel keeps the output size")

    @property
    def max_kernel(self) -> int:
        return self.weight.shape[-1]

    def pad_for_values(self, k: int, padding: int | str) -> int:
        if padding == "same":
            return same_padding(k, self.dilation)
        return 0 if padding == "valid" else int(padding)

    def pad_for(self, k: int, arch: dict[str, Any] | None = None) -> int:
        """The padding for kernel ``k``; a derived padding is evaluated for ``arch``."""
        return self.pad_for_values(k, _resolve(self.padding, arch))

    def kernel_slice(self, k: int) -> slice:
        start = (self.max_kernel - k) // 2
        return slice(start, start + k)

    def value_choices(self) -> list[Choice]:
        return sources_of(self.in_channels, self.out_channels, self.kernel_size, self.padding)

    def decisions_here(self) -> list[tuple[object, Decision]]:
        return _choice_decisions(self.in_channels, self.out_channels, self.kernel_size,
                                 self.padding)

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        c_in, c_out = _resolve(self.in_channels, arch), _resolve(self.out_channels, arch)
        k = _resolve(self.kernel_size, arch)
        conv = nn.Conv2d(c_in, c_out, k, stride=self.stride, padding=self.pad_for(k, arch),
                         dilation=self.dilation, groups=self.groups, bias=self.bias is not None)
        ks = self.kernel_slice(k)
        with torch.no_grad():
            conv.weight.copy_(self.weight[:c_out, : c_in // self.groups, ks, ks])
            if self.bias is not None:
                conv.bias.copy_(self.bias[:c_out])
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_out, k = _resolve(self.out_channels, None), _resolve(self.kernel_size, None)
        ks = self.kernel_slice(k)
        c_in = x.shape[1] if isinstance(self.in_channels, ValueExpr) else self.weight.shape[1]
        weight = self.weight[:c_out, :c_in, ks, ks]
        bias = None if self.bias is None else self.bias[:c_out]
        return F.conv2d(x, weight, bias, self.stride, self.pad_for(k), self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}")


class MutableBatchNorm2d(Mutable, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose width may be a choice (it normalises the channels it gets,
    using the first entries of its statistics and affine parameters)."""

    def __init__(self, num_features: int | ValueExpr, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        nn.BatchNorm2d.__init__(self, _max_size(num_features, "MutableBatchNorm2d width"),
                                eps=eps, momentum=momentum, affine=affine,
                                track_running_stats=track_running_stats)
        self.width = num_features

    def value_choices(self) -> list[Choice]:
        return sources_of(self.width)

    def decisions_here(self) -> list[tuple[object, Decision]]:
        return _choice_decisions(self.width)

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        c = _resolve(self.width, arch)
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum, affine=self.affine,
                            track_running_stats=self.track_running_stats)
        state = {k: (v[:c] if v.dim() else v) for k, v in self.state_dict().items()}
        bn.load_state_dict(state)
        return bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(
            x, None if self.running_mean is None else self.running_mean[:c],
            None if self.running_var is None else self.running_var[:c],
            None if self.weight is None else self.weight[:c],
            None if self.bias is None else self.bias[:c], use_batch, momentum, self.eps)


# ----------------------------------------------------------------------------- any module


class Parametrized(Mutable):
    """Any module constructor with value choices among its arguments, e.g.
    ``Parametrized(nn.Dropout, p=choice('drop', [0.1, 0.3]))`` or
    ``Parametrized(make_activation, choice('act', ['relu', 'gelu']))``; derived values
    (``Parametrized(nn.MaxPool2d, k, padding=k // 2)``) are computed per variant.

    Every combination of the choices is instantiated (at most 64): frozen, it is the
    chosen one; unfrozen, the first.
    """

    MAX_VARIANTS = 64

    def __init__(self, factory: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.factory_name = getattr(factory, "__name__", type(factory).__name__)
        found = sources_of(*args, *kwargs.values())
        self.choices = found
        combos = list(itertools.product(*(c.values for c in found)))
        if len(combos) > self.MAX_VARIANTS:
            raise ConfigError(f"Parametrized({self.factory_name}) has {len(combos)} "
                              f"combinations of choices; at most {self.MAX_VARIANTS}")
        self.combos = combos
        variants = []
        for combo in combos:
            picked = {id(c): v for c, v in zip(found, combo)}

            def fix(v: Any, picked: dict[int, Any] = picked) -> Any:
                if isinstance(v, ValueExpr):
                    return v.evaluate_with(lambda src: picked[id(src)])
                return v

            module = factory(*(fix(a) for a in args), **{k: fix(v) for k, v in kwargs.items()})
            if not isinstance(module, nn.Module):
                raise ConfigError(f"Parametrized: {self.factory_name} must return an "
                                  f"nn.Module, got {type(module).__name__}")
            variants.append(module)
        self.variants = nn.ModuleList(variants)

    def value_choices(self) -> list[Choice]:
        return list(self.choices)

    def decisions_here(self) -> list[tuple[object, Decision]]:
        return _choice_decisions(*self.choices)

    def index_of(self, arch: dict[str, Any]) -> int:
        wanted = [arch[c.label] for c in self.choices]
        for i, combo in enumerate(self.combos):
            if all(_same_value(a, b) for a, b in zip(combo, wanted)):
                return i
        raise ConfigError(f"Parametrized({self.factory_name}): no variant for {wanted}")

    def freeze(self, arch: dict[str, Any]) -> nn.Module:
        return freeze_module(self.variants[self.index_of(arch)], arch)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.variants[0](*args, **kwargs)


# ----------------------------------------------------------------------------- collection


def collect_decisions(root: nn.Module) -> list[Decision]:
    """Every decision under ``root`` in definition order (pre-order over submodules);
    unlabelled mutables get their path as label. ConfigError on a label claimed twice."""
    seen: dict[str, tuple[object, Decision]] = {}
    for path, module in root.named_modules():
        if not isinstance(module, Mutable):
            continue
        module.assign_label(path)
        for owner, decision in module.decisions_here():
            if decision.label is None:
                raise ConfigError(f"a choice inside {path or type(module).__name__} has no "
                                  "label; give choice(...) a label")
            previous = seen.get(decision.label)
            if previous is None:
                seen[decision.label] = (owner, decision)
            elif previous[0] is not owner:
                raise ConfigError(
                    f"label {decision.label!r} is used by two different decisions (the second "
                    f"at {path or 'the space'}); labels must be unique. To make two places "
                    "one decision, pass the same choice(...) object to both; for blocks of a "
                    "Repeat, build them with a factory (lambda i: Block(label=f'op{i}'))")
    return [d for _, d in seen.values()]


def iter_mutables(root: nn.Module) -> Iterator[tuple[str, Mutable]]:
    for path, module in root.named_modules():
        if isinstance(module, Mutable):
            yield path, module


def uniform_arch(decisions: Iterable[Decision], rng: Any) -> dict[str, Any]:
    arch: dict[str, Any] = {}
    for d in decisions:
        if d.kind == "input":
            arch[d.label] = sorted(rng.sample(list(d.values), d.n_chosen))
        else:
            arch[d.label] = rng.choice(list(d.values))
    return arch


def n_architectures(decisions: Iterable[Decision]) -> int:
    return math.prod(math.comb(len(d.values), d.n_chosen) if d.kind == "input"
                     else len(d.values) for d in decisions)
