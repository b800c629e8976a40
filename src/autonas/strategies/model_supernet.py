"""The supernet of a user model space: every decision of a ``ModelSpace`` relaxed.

DARTS (``darts_model.py``) mixes all values with softmax weights; the single-path
strategies (``model_oneshot.py``) run the same supernet on one path at a time. The
supernet is a copy of the space with each mutable replaced by its relaxation, fed the
softmaxed architecture weights of every label at each forward:

- ``LayerChoice``: the weighted sum of all candidates' outputs (candidates must agree in
  output shape).
- width choices of ``MutableLinear`` / ``MutableConv2d`` (weight-sliced mixture): one
  weight of the largest width; width ``w`` uses its first ``w`` output channels, and the
  output is the weighted sum of the candidates' outputs zero-padded to the largest
  width. That equals one full-width layer whose output channel ``c`` is scaled by the
  total weight of the widths above ``c``, which is how it is computed. The input side of a
  layer reads whatever width arrives (the producing layer's mixture).
- kernel-size choices of ``MutableConv2d`` (``padding='same'``): the weighted sum over
  kernel sizes of the convolution with the centre ``k x k`` of the largest kernel,
  computed as one convolution with the kernel masked by the weighted centre masks.
- ``InputChoice``: the weighted sum of all inputs (``sum`` and ``mean`` reductions); the
  ``n_chosen`` inputs with the largest weights are exported. ``concat`` and ``none`` give
  outputs whose shape depends on the choice: DARTS refuses them with a message, the
  single-path strategies (``gdas``, ``enas``, ``spos``, ``proxyless``) run them as they are.
- derived values (``choice * 2``, ``kernel // 2``, ``choice.map(fn)``) of one choice
  driving a width or kernel size: mixed over that choice's weights, each value computed
  from the choice's; a width derived from two or more choices gets a clear error.
- ``Repeat``: the weighted sum of the outputs after each allowed depth.
- anything else with value choices (``Parametrized``: activation names, rates): a
  LayerChoice over its instantiated variants; a variant's weight is the product of its
  choices' weights.

A label shared by several modules has one weight vector. Labels no relaxed module reads
(e.g. a width used only on the input side) get no architecture parameter and export
their first value. The argmax of every label is the exported architecture.

The same supernet runs single paths (``forward(x, weights, active)``): ``active`` names
the value indices each label computes (one-hot or sampled weights), so a sampled path
computes only its own candidates; ``strategies/model_oneshot.py`` builds on this.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..spaces.darts import use_batch_statistics
from ..spaces.model_space import (
    Decision,
    InputChoice,
    LayerChoice,
    ModelSpace,
    Mutable,
    MutableBatchNorm2d,
    MutableConv2d,
    MutableLinear,
    Parametrized,
    Repeat,
)
from ..spaces.mutables import Choice, ValueExpr, reduce_inputs, replace_mutables

Weights = dict[str, torch.Tensor]


Active = dict[str, list[int]]
"""Per label, the indices of the values a single path computes (None: all of them)."""


class WeightSlot:
    """Holds the architecture weights (and the active values of a single path) for the
    duration of one supernet forward, so the user's own ``forward`` runs unchanged and
    every relaxed module reads its label."""

    def __init__(self, soft: bool = True) -> None:
        self.weights: Weights | None = None
        self.active: Active | None = None
        self.read: set[str] = set()
        self.soft = soft
        """True when every value of a label is mixed (DARTS); False: single paths only."""

    def get(self, label: str) -> torch.Tensor:
        if self.weights is None:
            raise RuntimeError("a relaxed module ran outside ModelSupernet.forward(x, weights)")
        return self.weights[label]

    def indices(self, label: str, n: int) -> list[int]:
        """The value indices of ``label`` to compute: the path's, or all ``n``."""
        if self.active is not None and label in self.active:
            return list(self.active[label])
        return list(range(n))


# ----------------------------------------------------------------------------- relaxations


class MixedLayer(nn.Module):
    def __init__(self, candidates: list[nn.Module], label: str, slot: WeightSlot) -> None:
        super().__init__()
        self.candidates = nn.ModuleList(candidates)
        self.label = label
        self.slot = slot
        slot.read.add(label)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        w = self.slot.get(self.label)
        picked = self.slot.indices(self.label, len(self.candidates))
        outputs = [self.candidates[i](*args, **kwargs) for i in picked]
        shapes = {tuple(o.shape) for o in outputs}
        if len(shapes) > 1:
            raise ConfigError(f"the one-shot supernet mixes the candidates of {self.label!r}, "
                              f"but their outputs differ in shape: {sorted(shapes)}; make "
                              "every candidate give the same output shape")
        return sum(w[i] * o for i, o in zip(picked, outputs))


class MixedVariants(nn.Module):
    """A Parametrized module relaxed: its variants mixed with product weights."""

    def __init__(self, variants: list[nn.Module], combos: list[tuple], choices: list[Choice],
                 slot: WeightSlot) -> None:
        super().__init__()
        self.variants = nn.ModuleList(variants)
        self.labels = [c.label for c in choices]
        self.index = [tuple(c.values.index(v) for c, v in zip(choices, combo))
                      for combo in combos]
        self.slot = slot
        slot.read.update(self.labels)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        ws = [self.slot.get(label) for label in self.labels]
        allowed = [set(self.slot.indices(label, len(w))) for label, w in zip(self.labels, ws)]
        out = None
        for variant, idx in zip(self.variants, self.index):
            if any(i not in a for i, a in zip(idx, allowed)):
                continue  # not on the path: not computed
            weight = math.prod(w[i] for w, i in zip(ws, idx))
            y = weight * variant(*args, **kwargs)
            out = y if out is None else out + y
        return out


class MixedInputs(nn.Module):
    """An InputChoice relaxed: the weighted sum of every input (``sum``/``mean``), or on a
    single path its chosen inputs, each scaled by its (straight-through) weight, reduced
    as the InputChoice says."""

    def __init__(self, m: InputChoice, slot: WeightSlot) -> None:
        super().__init__()
        self.n_candidates = m.n_candidates
        self.n_chosen = m.n_chosen
        self.reduction = m.reduction
        self.label = m.label
        self.slot = slot
        slot.read.add(m.label)
        if slot.soft and m.reduction in ("concat", "none") and m.n_chosen < m.n_candidates:
            raise ConfigError(
                f"DARTS cannot relax InputChoice {m.label!r} with reduction={m.reduction!r}: "
                f"the output's shape depends on which {m.n_chosen} of {m.n_candidates} inputs "
                "are chosen, so they cannot be mixed. Use reduction 'sum' or 'mean', or a "
                "single-path strategy (gdas, enas, spos, proxyless) or a multi-trial one.")

    def current_indices(self) -> list[int] | None:
        """The inputs a single path reads (gated-off extra draws excluded); None when every
        input is mixed."""
        if self.slot.active is None or self.label not in self.slot.active:
            return None
        picked = sorted(self.slot.active[self.label])
        if len(picked) > self.n_chosen:
            w = self.slot.get(self.label)
            picked = [i for i in picked if float(w[i].detach()) != 0.0]
        return picked

    def forward(self, inputs: list[torch.Tensor]) -> Any:
        w = self.slot.get(self.label)
        if self.slot.active is None or self.label not in self.slot.active:
            if self.reduction in ("concat", "none"):  # every input is chosen
                return reduce_inputs([w[i] * x for i, x in enumerate(inputs)], self.reduction)
            return sum(w[i] * x for i, x in enumerate(inputs))
        picked = sorted(self.slot.active[self.label])
        if self.reduction in ("sum", "mean"):
            # inputs computed but gated off (weight 0, e.g. ProxylessNAS' second draw)
            # add nothing yet still get a gradient for their gate
            out = sum(w[i] * inputs[i] for i in picked)
            return out / self.n_chosen if self.reduction == "mean" else out
        if len(picked) > self.n_chosen:  # concat/none: the shape allows the chosen only
            picked = self.current_indices() or picked
        return reduce_inputs([w[i] * inputs[i] for i in picked], self.reduction)


class MixedRepeat(nn.Module):
    def __init__(self, blocks: list[nn.Module], depths: list[int], label: str,
                 slot: WeightSlot) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.depths = list(depths)
        self.label = label
        self.slot = slot
        slot.read.add(label)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.slot.get(self.label)
        picked = set(self.slot.indices(self.label, len(self.depths)))
        wanted = {self.depths[i] for i in picked}
        out = w[self.depths.index(0)] * x if 0 in wanted else None
        for d, block in enumerate(self.blocks[: max(wanted)], start=1):
            x = block(x)
            if d in wanted:
                y = w[self.depths.index(d)] * x
                out = y if out is None else out + y
        return out


def width_steps(values: list[int], width: int) -> torch.Tensor:
    """(n_values, width): row i is 1 on the first ``values[i]`` channels."""
    return (torch.arange(width)[None, :] < torch.tensor(values)[:, None]).float()


def kernel_masks(kernels: list[int], k_max: int) -> torch.Tensor:
    """(n_kernels, k_max, k_max): mask i is 1 on the centre ``kernels[i]`` square."""
    masks = torch.zeros(len(kernels), k_max, k_max)
    for i, k in enumerate(kernels):
        s = (k_max - k) // 2
        masks[i, s:s + k, s:s + k] = 1.0
    return masks


class SlicedLinear(nn.Module):
    """MutableLinear relaxed: the weight-sliced mixture over output widths."""

    def __init__(self, m: MutableLinear, slot: WeightSlot) -> None:
        super().__init__()
        self.weight = nn.Parameter(m.weight.detach().clone())
        self.bias = None if m.bias is None else nn.Parameter(m.bias.detach().clone())
        self.slot = slot
        self.in_mutable = isinstance(m.in_features, ValueExpr)
        mixed = _mixed(m.out_features, slot, "MutableLinear width")
        self.out_label = None if mixed is None else mixed[0]
        if mixed is not None:
            self.register_buffer("steps", width_steps(mixed[1], m.weight.shape[0]),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight[:, : x.shape[-1]] if self.in_mutable else self.weight
        y = F.linear(x, weight, self.bias)
        if self.out_label is not None:
            y = y * (self.slot.get(self.out_label) @ self.steps)
        return y


class SlicedConv2d(nn.Module):
    """MutableConv2d relaxed: weight-sliced mixture over output widths and kernel sizes."""

    def __init__(self, m: MutableConv2d, slot: WeightSlot) -> None:
        super().__init__()
        self.weight = nn.Parameter(m.weight.detach().clone())
        self.bias = None if m.bias is None else nn.Parameter(m.bias.detach().clone())
        self.stride, self.dilation, self.groups = m.stride, m.dilation, m.groups
        self.padding = _padding_for_largest_kernel(m)
        self.slot = slot
        self.in_mutable = isinstance(m.in_channels, ValueExpr)
        out = _mixed(m.out_channels, slot, "MutableConv2d width")
        kernel = _mixed(m.kernel_size, slot, "MutableConv2d kernel size")
        self.out_label = None if out is None else out[0]
        self.kernel_label = None if kernel is None else kernel[0]
        if out is not None:
            self.register_buffer("steps", width_steps(out[1], m.weight.shape[0]),
                                 persistent=False)
        if kernel is not None:
            odd = [k for k in kernel[1] if (m.max_kernel - k) % 2]
            if odd:
                raise ConfigError(
                    f"kernel sizes {kernel[1]} of {m.kernel_size!r} cannot share the centre of "
                    f"the {m.max_kernel}x{m.max_kernel} kernel ({odd} differ from it by an "
                    "odd number); use all odd or all even kernel sizes")
            self.register_buffer("kmasks", kernel_masks(kernel[1], m.max_kernel),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight[:, : x.shape[1]] if self.in_mutable else self.weight
        if self.kernel_label is not None:
            mask = torch.einsum("k,kij->ij", self.slot.get(self.kernel_label), self.kmasks)
            weight = weight * mask
        y = F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.out_label is not None:
            y = y * (self.slot.get(self.out_label) @ self.steps).view(1, -1, 1, 1)
        return y


def _padding_for_largest_kernel(m: MutableConv2d) -> int:
    """The padding that gives the largest kernel the output size every kernel gives
    (MutableConv2d checked at construction that the size is the same for all)."""
    k0 = m.kernel_size.evaluate(None) if isinstance(m.kernel_size, ValueExpr) else m.kernel_size
    growth = 2 * m.pad_for(k0, None) - m.dilation * (k0 - 1)
    twice = growth + m.dilation * (m.max_kernel - 1)
    if twice % 2:
        raise ConfigError(f"MutableConv2d {m.kernel_size!r}: no padding gives the "
                          f"{m.max_kernel}x{m.max_kernel} kernel the output size of the "
                          "others; use odd kernel sizes")
    return twice // 2


def _mixed(value: Any, slot: WeightSlot, what: str) -> tuple[str, list[Any]] | None:
    """(label, value per choice value) of a choice or a value derived from one choice."""
    if not isinstance(value, ValueExpr):
        return None
    sources = value.sources()
    if len(sources) != 1:
        raise ConfigError(
            f"the one-shot supernet mixes a {what} over one choice's weights, but {value!r} "
            f"depends on {[c.label for c in sources]}; derive it from a single choice, or use "
            "a multi-trial strategy")
    source = sources[0]
    slot.read.add(source.label)
    return source.label, [value.evaluate_with(lambda _c, v=v: v) for v in source.values]


def relax(module: nn.Module, slot: WeightSlot) -> nn.Module:
    """A copy of ``module`` with every mutable replaced by its DARTS relaxation."""
    return replace_mutables(module, lambda m: _relax_one(m, slot))


def _relax_one(m: Mutable, slot: WeightSlot) -> nn.Module:
    if isinstance(m, LayerChoice):
        return MixedLayer([relax(c, slot) for c in m.candidates.values()], m.label, slot)
    if isinstance(m, InputChoice):
        return MixedInputs(m, slot)
    if isinstance(m, Repeat):
        blocks = [relax(b, slot) for b in m.blocks]
        if isinstance(m.depth, Choice):
            return MixedRepeat(blocks, m.depths, m.label, slot)
        return nn.Sequential(*blocks[: m.depth])
    if isinstance(m, MutableLinear):
        return SlicedLinear(m, slot)
    if isinstance(m, MutableConv2d):
        return SlicedConv2d(m, slot)
    if isinstance(m, MutableBatchNorm2d):
        return copy.deepcopy(m)  # normalises the (max-width) mixture it is given
    if isinstance(m, Parametrized):
        return MixedVariants([relax(v, slot) for v in m.variants], m.combos, m.choices, slot)
    raise ConfigError(f"DARTS has no relaxation for {type(m).__name__} ({m.label!r}); use "
                      "LayerChoice, InputChoice, Repeat, Mutable* layers or Parametrized")


class ModelSupernet(nn.Module):
    """The relaxed space: ``forward(x, weights)`` with ``weights`` label -> softmax, or
    ``forward(x, weights, active)`` for a single path. ``soft=False`` builds a supernet
    that only ever runs single paths (which allows InputChoice concat/none)."""

    def __init__(self, space: ModelSpace, soft: bool = True) -> None:
        super().__init__()
        self.decisions = space.decisions()
        self.slot = WeightSlot(soft)
        self.body = relax(space, self.slot)
        use_batch_statistics(self.body)
        self.relaxed = [d for d in self.decisions if d.label in self.slot.read]
        """Decisions the supernet's output depends on (those that get alphas)."""

    def forward(self, x: torch.Tensor, weights: Weights,
                active: Active | None = None) -> torch.Tensor:
        if active is None and not self.slot.soft:
            raise RuntimeError("this supernet runs single paths: pass active")
        self.slot.weights = weights
        self.slot.active = active
        try:
            return self.body(x)
        finally:
            self.slot.weights = None
            self.slot.active = None


class ModelArchParams(nn.Module):
    """One alpha vector per relaxed label."""

    def __init__(self, decisions: list[Decision], init_scale: float = 1e-3) -> None:
        super().__init__()
        self.labels = [d.label for d in decisions]
        self.alphas = nn.ParameterList(
            nn.Parameter(init_scale * torch.randn(len(d.values))) for d in decisions)

    def softmax(self) -> Weights:
        return {label: F.softmax(a, dim=-1) for label, a in zip(self.labels, self.alphas)}


def derive_arch(decisions: list[Decision], weights: Weights) -> dict[str, Any]:
    """The argmax architecture; labels without weights take their first value."""
    arch: dict[str, Any] = {}
    for d in decisions:
        w = weights.get(d.label)
        if w is None:
            arch[d.label] = d.default
        elif d.kind == "input":
            arch[d.label] = sorted(int(i) for i in torch.topk(w.detach(), d.n_chosen).indices)
        else:
            arch[d.label] = d.values[int(torch.argmax(w.detach()))]
    return arch


__all__ = [
    "Active",
    "ModelArchParams",
    "ModelSupernet",
    "WeightSlot",
    "Weights",
    "derive_arch",
    "relax",
]
