"""The DARTS cell space: a weight-sharing supernet for search, and the fixed network a
genotype describes for retraining.

Both stack cells the same way: a stem, ``layers`` cells with reduction cells at 1/3 and
2/3 of the depth, global pooling and a linear classifier. A cell has two inputs (the
previous two cells' outputs), ``nodes`` intermediate nodes, and concatenates the nodes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import ConfigError
from . import register_space
from .base import BuildSpec, SearchSpace
from .fused import FusedEdges
from .genotype import CellGenotype, Genotype, derive_cell, edge_inputs
from .ops import DARTS_OPS, OPS, SKIP_OPS, ZERO_OPS, FactorizedReduce, ReLUConvBN, Zero, make_op

CELL_TYPES = ("normal", "reduce")

DARTS_V2: dict = {
    "normal": [[["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
               [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
               [["sep_conv_3x3", 1], ["skip_connect", 0]],
               [["skip_connect", 0], ["dil_conv_3x3", 2]]],
    "reduce": [[["max_pool_3x3", 0], ["max_pool_3x3", 1]],
               [["skip_connect", 2], ["max_pool_3x3", 1]],
               [["max_pool_3x3", 0], ["skip_connect", 2]],
               [["skip_connect", 2], ["max_pool_3x3", 1]]],
}
"""The cells DARTS (second order) found on CIFAR-10 (Liu et al., 2019, "DARTS_V2"): the
documented default when a search of the cell space could not choose."""
DARTS_V2_OPS = ("sep_conv_3x3", "skip_connect", "dil_conv_3x3", "max_pool_3x3")


def reduction_layers(layers: int) -> set[int]:
    """Cells that halve the resolution: at 1/3 and 2/3 of the depth, as in DARTS."""
    if layers < 1:
        raise ConfigError(f"a network needs at least one cell, got layers={layers}")
    if layers == 1:
        return set()
    return {layers // 3, 2 * layers // 3} - {0} or {layers // 2}


def stem_downsamples(image_size: int) -> int:
    """How many stride-2 stem convs bring an input near 32 px (0 for MedMNIST's 28 px)."""
    return max(0, round(math.log2(max(image_size, 1) / 32)))


class Stem(nn.Sequential):
    """3x3 conv + BN for small images; extra stride-2 convs for large ones, so cells
    always work near 32 px and 224 px inputs stay affordable."""

    def __init__(self, c_in: int, c_out: int, image_size: int) -> None:
        layers: list[nn.Module] = []
        n_down = stem_downsamples(image_size)
        c = c_in
        for i in range(n_down):
            width = c_out if i == n_down - 1 else max(c_out // 2, 8)
            layers += [nn.Conv2d(c, width, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
        super().__init__(*layers)


@register_space("darts", "DARTS cells: sep/dil convs, pools, skip and none on each edge; "
                "normal and reduction cells")
@dataclass
class DartsSpace(SearchSpace):
    """The DARTS cell space: a normal and a reduction cell, ``nodes`` intermediate nodes,
    each the sum of two ops on earlier states. Architectures are genotypes
    ``{"normal": [[[op, input], [op, input]], ...], "reduce": [...]}``."""

    name = "darts"
    ops: tuple[str, ...] = DARTS_OPS
    nodes: int = 4
    stem_multiplier: int = 3

    def __post_init__(self) -> None:
        self.ops = tuple(self.ops)
        unknown = [op for op in self.ops if op not in OPS]
        if unknown:
            raise ConfigError(f"unknown op(s) {unknown}; known ops: {sorted(OPS)}")
        if len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"op list has duplicates: {list(self.ops)}")
        if all(op in ZERO_OPS for op in self.ops):
            raise ConfigError("the op set needs at least one op besides 'none'")
        if self.nodes < 1:
            raise ConfigError(f"a cell needs at least one node, got nodes={self.nodes}")

    @property
    def n_edges(self) -> int:
        return len(edge_inputs(self.nodes))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ops"] = list(self.ops)
        return d

    def options(self) -> dict:
        return self.to_dict()

    def sample(self, rng: random.Random) -> dict:
        return self.random_genotype(rng).to_dict()

    def validate(self, arch: dict) -> dict:
        genotype = Genotype.from_dict(arch)
        cells = position_cells(arch)
        real = set(self.ops)
        named = [("normal", genotype.normal), ("reduce", genotype.reduce),
                 *((f"cell {i}", c) for i, c in enumerate(cells or []))]
        for kind, cell in named:
            outside = sorted(set(cell.ops()) - real)
            if outside:
                raise ConfigError(f"{kind} cell uses op(s) {outside} outside this space's "
                                  f"ops {list(self.ops)}")
        return with_cells(genotype.to_dict(), cells)

    def build(self, arch: dict, spec: BuildSpec) -> nn.Module:
        genotype = Genotype.from_dict(arch)
        return Network(NetworkConfig(
            genotype=with_cells(genotype.to_dict(), position_cells(arch)),
            in_channels=spec.in_channels,
            num_classes=spec.num_classes, image_size=spec.image_size, channels=spec.channels,
            layers=spec.layers, nodes=genotype.normal.n_nodes, auxiliary=spec.auxiliary,
            dropout=spec.dropout))

    def default_arch(self) -> dict:
        """DARTS-V2's cells (Liu et al., 2019) when this space holds their ops and four
        nodes; otherwise a residual chain: each node applies the space's first parametric op
        (neither zero, skip nor pooling) to the latest state and adds a skip connection from
        the state before it (both ops the parametric one if the space has no skip)."""
        if self.nodes == 4 and set(DARTS_V2_OPS) <= set(self.ops):
            return self.validate(DARTS_V2)
        real = [op for op in self.ops if op not in ZERO_OPS]
        params = [op for op in real if op not in SKIP_OPS and "pool" not in op]
        op = (params or real)[0]
        skip = next((o for o in real if o in SKIP_OPS), op)
        cell = [[[skip, i], [op, i + 1]] for i in range(self.nodes)]
        return self.validate({"normal": cell, "reduce": cell})

    def describe(self, arch: dict) -> str:
        cells = position_cells(arch)
        extra = f" | {len(cells)} cells sampled per position" if cells else ""
        return str(Genotype.from_dict(arch)) + extra

    # Categorical view: per node, the pair of inputs ("0,1") and one op per input.
    def choices(self) -> dict[str, list]:
        real = [op for op in self.ops if op not in ZERO_OPS]
        out: dict[str, list] = {}
        for t in CELL_TYPES:
            for i in range(self.nodes):
                out[f"{t}/node{i}/inputs"] = [f"{a},{b}" for a in range(i + 2)
                                              for b in range(a + 1, i + 2)]
                out[f"{t}/node{i}/op0"] = list(real)
                out[f"{t}/node{i}/op1"] = list(real)
        return out

    def from_choices(self, values: dict) -> dict:
        cells = {}
        for t in CELL_TYPES:
            nodes = []
            for i in range(self.nodes):
                a, b = (int(v) for v in str(values[f"{t}/node{i}/inputs"]).split(","))
                nodes.append([[values[f"{t}/node{i}/op0"], a], [values[f"{t}/node{i}/op1"], b]])
            cells[t] = nodes
        return self.validate(cells)

    def to_choices(self, arch: dict) -> dict:
        genotype = Genotype.from_dict(arch)
        out = {}
        for t, cell in (("normal", genotype.normal), ("reduce", genotype.reduce)):
            for i, edges in enumerate(cell.nodes):
                (op0, a), (op1, b) = sorted(edges, key=lambda e: e[1])
                out[f"{t}/node{i}/inputs"] = f"{a},{b}"
                out[f"{t}/node{i}/op0"] = op0
                out[f"{t}/node{i}/op1"] = op1
        return out

    def derive(self, weights: dict[str, torch.Tensor], k: int = 2) -> Genotype:
        """Genotype from per-cell-type (n_edges, n_ops) softmaxed weights."""
        return Genotype(*(derive_cell(weights[t], self.ops, self.nodes, k) for t in CELL_TYPES))

    def random_genotype(self, rng: random.Random, k: int = 2) -> Genotype:
        """A uniformly random genotype of the space (for baselines and random search)."""
        real_ops = [op for op in self.ops if op not in ZERO_OPS]

        def cell() -> CellGenotype:
            nodes = []
            for i in range(self.nodes):
                inputs = sorted(rng.sample(range(i + 2), min(k, i + 2)))
                nodes.append(tuple((rng.choice(real_ops), j) for j in inputs))
            return CellGenotype(tuple(nodes))

        return Genotype(cell(), cell())


def position_cells(arch: dict) -> list[CellGenotype] | None:
    """The per-position cells of a flexibly stacked architecture (``arch["cells"]``: one
    cell per network layer, reduction cells at the reduction positions), or None."""
    cells = arch.get("cells")
    if cells is None:
        return None
    if not isinstance(cells, list) or not cells:
        raise ConfigError('"cells" must be a non-empty list with one cell (a list of nodes) '
                          "per network layer")
    return [CellGenotype.from_list(c) for c in cells]


def with_cells(genotype: dict, cells: list[CellGenotype] | None) -> dict:
    return genotype if cells is None else {**genotype, "cells": [c.to_list() for c in cells]}


# ----------------------------------------------------------------------------- search


def _split_op(op: nn.Module) -> tuple[bool, list[nn.Module], nn.BatchNorm2d | None]:
    """Split a flat op into (starts with ReLU, body, trailing affine-free BN)."""
    if not isinstance(op, nn.Sequential):
        return False, [op], None
    mods = list(op)
    head_relu = bool(mods) and isinstance(mods[0], nn.ReLU)
    if head_relu:
        mods = mods[1:]
    tail = mods[-1] if mods and isinstance(mods[-1], nn.BatchNorm2d) else None
    if tail is not None and not tail.affine:
        mods = mods[:-1]
    else:
        tail = None
    return head_relu, mods, tail


def use_batch_statistics(module: nn.Module) -> None:
    """Make every BN of a supernet normalise with batch statistics, in train and eval mode.

    Running statistics of a supernet mix many architectures and are never used after the
    search; dropping them also keeps functional (unrolled) forward passes free of side
    effects on module buffers.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None


class MixedOp(nn.Module):
    """One edge of the supernet: the weighted sum of all candidate ops.

    Computes exactly ``sum_k w[k] * op_k(x)``, but cheaper: ops known to output zeros are
    never run, ``active`` restricts the sum further (a sampled path, or ops pruned to
    weight zero), a leading ReLU is taken from ``x_relu`` (shared by every edge reading
    the same state), and the weight of an op ending in an affine-free BN becomes that BN's
    scale instead of a separate multiply.
    """

    fusable = True
    """Edges of this class leaving one state may be evaluated together (``FusedEdges``)."""

    def __init__(self, op_names: Sequence[str], channels: int, stride: int) -> None:
        super().__init__()
        self.op_names = list(op_names)
        self.stride = stride
        self.compute = [k for k, name in enumerate(self.op_names) if name not in ZERO_OPS]
        self.ops = nn.ModuleDict()
        for k in self.compute:
            name = self.op_names[k]
            op = make_op(name, channels, stride, affine=False)
            if "pool" in name:  # pools have no weights: BN puts them on the conv ops' scale
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            self.ops[str(k)] = op
        self._plans = {k: _split_op(self.ops[str(k)]) for k in self.compute}
        self.zero = Zero(stride)

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                active: Sequence[int] | None = None,
                x_relu: torch.Tensor | None = None) -> torch.Tensor:
        out = None
        for k in self.compute if active is None else active:
            plan = self._plans.get(k)
            if plan is None:  # a zero op: contributes nothing
                continue
            head_relu, body, tail = plan
            if head_relu:
                if x_relu is None:
                    x_relu = torch.relu(x)
                h = x_relu
            else:
                h = x
            for m in body:
                h = m(h)
            if tail is not None:
                scale = weights[k].expand(h.shape[1]).contiguous()
                y = torch.nn.functional.batch_norm(h, None, None, scale, None, True, 0.0, tail.eps)
            else:
                y = weights[k] * h
            out = y if out is None else out + y
        return self.zero(x) if out is None else out


EdgeFactory = Callable[[Sequence[str], int, int], nn.Module]
"""Builds a supernet edge from (op names, channels, stride); the edge's forward takes
``(x, weights, active=None, x_relu=None)`` like ``MixedOp``'s (e.g. PC-DARTS' partial
channel edges). An edge class with ``fusable = True`` is evaluated with the other edges
leaving its state by its ``group_class`` (default ``FusedEdges``)."""


class SearchCell(nn.Module):
    """A supernet cell. With ``fuse`` (the default) the edges leaving each state are
    evaluated together (``spaces/fused.py``); ``active`` (sampled paths), edges with
    different op lists and edges that are not ``fusable`` use the edge-by-edge path. Both
    compute the same function."""

    def __init__(self, edge_ops: Sequence[Sequence[str]], nodes: int, c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool, fuse: bool = True,
                 edge_factory: EdgeFactory | None = None) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.inputs = edge_inputs(nodes)
        make_edge = edge_factory or MixedOp
        self.edges = nn.ModuleList(
            make_edge(edge_ops[e], c, 2 if reduction and j < 2 else 1)
            for e, (_, j) in enumerate(self.inputs)
        )
        self.out_edges = [[e for e, (_, src) in enumerate(self.inputs) if src == j]
                          for j in range(nodes + 2)]
        self.fuse = fuse
        self._groups = [
            getattr(self.edges[idx[0]], "group_class", FusedEdges)([self.edges[e] for e in idx])
            if idx and all(getattr(self.edges[e], "fusable", False) for e in idx)
            and FusedEdges.compatible([self.edges[e] for e in idx]) else None
            for idx in self.out_edges
        ]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                active: Sequence[Sequence[int] | None] | None = None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        acc: list[torch.Tensor | None] = [None] * self.nodes
        # State j feeds nodes j-1 and later; node j-1 is complete once states 0..j are done.
        for j in range(self.nodes + 1):
            idx = self.out_edges[j]
            h = states[j]
            group = self._groups[j]
            if self.fuse and active is None and group is not None:
                ys = group(h, weights[idx])
            else:
                h_relu = torch.relu(h)
                ys = [self.edges[e](h, weights[e], None if active is None else active[e], h_relu)
                      for e in idx]
            for e, y in zip(idx, ys):
                node = self.inputs[e][0]
                acc[node] = y if acc[node] is None else acc[node] + y
            if j >= 1:
                states.append(acc[j - 1])
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """The DARTS search network. Architecture weights are not parameters of this module:
    a strategy passes them to ``forward``, so the same supernet serves DARTS, GDAS,
    PC-DARTS-style weights and single-path samplers, and a second-order step can call it
    functionally with unrolled weights.
    """

    def __init__(self, space: DartsSpace, in_channels: int, num_classes: int, image_size: int,
                 channels: int = 8, layers: int = 5,
                 edge_ops: dict[str, Sequence[Sequence[str]]] | None = None,
                 fuse: bool = True, edge_factory: EdgeFactory | None = None) -> None:
        super().__init__()
        self.space = space
        self.channels = channels
        self.layers = layers
        n_edges = space.n_edges
        self.edge_ops = {t: [list(space.ops) for _ in range(n_edges)] for t in CELL_TYPES}
        if edge_ops is not None:
            self.edge_ops.update({t: [list(o) for o in edge_ops[t]] for t in edge_ops})
        c_stem = space.stem_multiplier * channels
        self.stem = Stem(in_channels, c_stem, image_size)
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions = reduction_layers(layers)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            kind = "reduce" if reduction else "normal"
            self.cells.append(SearchCell(self.edge_ops[kind], space.nodes, c_pp, c_p, c,
                                         reduction, reduction_prev, fuse=fuse,
                                         edge_factory=edge_factory))
            reduction_prev = reduction
            c_pp, c_p = c_p, space.nodes * c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        use_batch_statistics(self)

    @property
    def n_ops(self) -> int:
        return len(self.edge_ops["normal"][0])

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor],
                active: dict[str, Sequence[Sequence[int] | None]] | None = None) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], None if active is None else active[kind])
        return self.classifier(self.pool(s1).flatten(1))


# ----------------------------------------------------------------------------- retrain


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    if not training or drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """A cell of the derived network: each node sums the ops its genotype names."""

    def __init__(self, genotype: CellGenotype, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_pp, c) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.genotype = genotype
        self.ops = nn.ModuleList()
        self.inputs: list[list[int]] = []
        for edges in genotype.nodes:
            self.inputs.append([j for _, j in edges])
            for op, j in edges:
                self.ops.append(make_op(op, c, 2 if reduction and j < 2 else 1, affine=True))
        self.zero_ops = [op in ZERO_OPS for op, _ in
                         (e for edges in genotype.nodes for e in edges)]
        self.skip_ops = [isinstance(m, nn.Identity) for m in self.ops]
        self.drop_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        k = 0
        for inputs in self.inputs:
            acc = None
            for j in inputs:
                h = self.ops[k](states[j])
                if not self.skip_ops[k] and not self.zero_ops[k]:
                    h = drop_path(h, self.drop_prob, self.training)
                acc = h if acc is None else acc + h
                k += 1
            states.append(acc)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """Extra classifier on intermediate features (DARTS' auxiliary tower), any input size."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 256, 2, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@dataclass
class NetworkConfig:
    """Everything needed to rebuild a derived network (saved next to its weights)."""

    genotype: dict
    in_channels: int
    num_classes: int
    image_size: int
    channels: int = 16
    layers: int = 8
    nodes: int = 4
    stem_multiplier: int = 3
    auxiliary: bool = False
    dropout: float = 0.0
    extra: dict = field(default_factory=dict)


class Network(nn.Module):
    """The network a genotype describes, trained from scratch after the search."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        genotype = Genotype.from_dict(cfg.genotype)
        cells = position_cells(cfg.genotype)
        if cells is not None and len(cells) != cfg.layers:
            raise ConfigError(f"the architecture holds {len(cells)} cells sampled per position "
                              f"but the network has {cfg.layers} layers; set network.layers="
                              f"{len(cells)} (or search.stacking_layers={cfg.layers} and search "
                              "again)")
        named = [("normal", genotype.normal), ("reduce", genotype.reduce),
                 *((f"cell {i}", c) for i, c in enumerate(cells or []))]
        for kind, cell in named:
            unknown = [op for op in cell.ops() if op not in OPS]
            if unknown:
                raise ConfigError(f"{kind} cell uses unknown op(s) {unknown}")
        c_stem = cfg.stem_multiplier * cfg.channels
        self.stem = Stem(cfg.in_channels, c_stem, cfg.image_size)
        c_pp, c_p, c = c_stem, c_stem, cfg.channels
        reductions = reduction_layers(cfg.layers)
        self.aux_position = 2 * cfg.layers // 3 if cfg.auxiliary and cfg.layers > 2 else -1
        self.cells = nn.ModuleList()
        reduction_prev = False
        c_aux = 0
        for i in range(cfg.layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell_genotype = (cells[i] if cells is not None
                             else genotype.reduce if reduction else genotype.normal)
            self.cells.append(Cell(cell_genotype, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, cell_genotype.n_nodes * c
            if i == self.aux_position:
                c_aux = c_p
        self.aux_head = AuxiliaryHead(c_aux, cfg.num_classes) if self.aux_position >= 0 else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c_p, cfg.num_classes)

    def set_drop_path(self, prob: float) -> None:
        for cell in self.cells:
            cell.drop_prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_position and self.training and self.aux_head is not None:
                aux = self.aux_head(s1)
        logits = self.classifier(self.dropout(self.pool(s1).flatten(1)))
        return (logits, aux) if aux is not None else logits
