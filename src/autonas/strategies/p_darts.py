"""P-DARTS (Chen et al., 2019): progressive search that closes the depth gap between the
shallow search network and the deep final one.

The epochs are split into stages. Each stage trains a fresh, deeper supernet (e.g.
3 -> 5 -> 8 cells) on fewer ops per edge: between stages the weakest ops of every edge
are dropped (e.g. 8 -> 5 -> 3), which pays for the added depth. Skip connections get a
dropout whose rate decays to zero within each stage, so their easy gradient path does not
win on its own, and the final normal cell keeps at most ``skip_cap`` skip connections (the
weakest extra ones give way to the next best op).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..run import get_logger
from ..spaces.darts import CELL_TYPES, DartsSpace, MixedOp, Supernet, _split_op
from ..spaces.genotype import CellGenotype, Genotype, derive_cell
from ..spaces.ops import SKIP_OPS, ZERO_OPS
from ..training.device import to_channels_last
from . import register_strategy
from .base import SearchContext, SearchResult
from .darts import Darts
from .oneshot import normalized_entropy
from .single_path import edge_index


class SkipDropout(nn.Module):
    """An identity op followed by dropout at rate ``p`` (set by the strategy per epoch)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training) if self.p > 0 else x


class SkipDropMixedOp(MixedOp):
    """A MixedOp whose stride-1 skip connections pass through ``SkipDropout``."""

    def __init__(self, op_names: Sequence[str], channels: int, stride: int) -> None:
        super().__init__(op_names, channels, stride)
        for k in self.compute:
            if self.op_names[k] in SKIP_OPS and stride == 1:
                self.ops[str(k)] = SkipDropout()
                self._plans[k] = _split_op(self.ops[str(k)])


def set_skip_dropout(net: nn.Module, p: float) -> None:
    for m in net.modules():
        if isinstance(m, SkipDropout):
            m.p = p


def keep_strongest(weights: torch.Tensor, edge_ops: list[list[str]], ops: Sequence[str],
                   n_keep: int) -> list[list[str]]:
    """Per edge, the ``n_keep`` ops with the largest weight (in the space's order), at least
    one of them a real (non-zero) op. ``weights`` is (n_edges, len(ops))."""
    weights = weights.detach()
    kept = []
    for e, current in enumerate(edge_ops):
        ranked = sorted(current, key=lambda op: (-float(weights[e, ops.index(op)]),
                                                 ops.index(op)))
        keep = ranked[:n_keep]
        if all(op in ZERO_OPS for op in keep):
            real = [op for op in ranked if op not in ZERO_OPS]
            if real:
                keep[-1] = real[0]
        kept.append([op for op in ops if op in keep])
    return kept


def cap_skips(weights: torch.Tensor, ops: Sequence[str], nodes: int, cap: int) -> CellGenotype:
    """The derived cell with at most ``cap`` skip connections: while there are more, the
    weakest chosen skip is struck off its edge and the cell derived again, so that edge
    offers its next best op (or the node takes another input)."""
    w = weights.detach().float().cpu().clone()
    cell = derive_cell(w, ops, nodes)
    while cell.count(SKIP_OPS) > cap:
        weakest = min(
            (float(w[edge_index(node, j), ops.index(op)]), edge_index(node, j), ops.index(op))
            for node, edges in enumerate(cell.nodes) for op, j in edges if op in SKIP_OPS)
        _, e, k = weakest
        w[e, k] = -1.0
        cell = derive_cell(w, ops, nodes)
    return cell


def cap_sampled_skips(cell: CellGenotype, weights: torch.Tensor, ops: Sequence[str],
                      cap: int) -> CellGenotype:
    """A sampled cell with at most ``cap`` skips: the weakest extra skips become the best
    other real op of the same edge."""
    nodes = [list(edges) for edges in cell.nodes]
    skips = sorted((float(weights[edge_index(n, j), ops.index(op)]), n, i)
                   for n, edges in enumerate(nodes) for i, (op, j) in enumerate(edges)
                   if op in SKIP_OPS)
    others = [k for k, op in enumerate(ops) if op not in SKIP_OPS and op not in ZERO_OPS]
    for _, n, i in skips[: max(0, len(skips) - cap)] if others else []:
        j = nodes[n][i][1]
        best = max(others, key=lambda k: float(weights[edge_index(n, j), k]))
        nodes[n][i] = (ops[best], j)
    return CellGenotype(tuple(tuple(edges) for edges in nodes))


@register_strategy("p-darts", "P-DARTS: progressive stages, deeper supernet and fewer ops "
                   "per edge each stage, decaying skip dropout, skip cap", order=1)
@dataclass
class PDarts(Darts):
    layers: int = 8
    """Cells of the last stage's supernet."""
    stage_ops: list[int] = field(default_factory=lambda: [8, 5, 3])
    """Ops per edge in each stage (clamped to the space's op count); one entry per stage."""
    stage_layers: list[int] | None = None
    """Cells per stage; default: growing evenly up to ``layers`` (8 -> 3, 5, 8)."""
    skip_dropout: list[float] = field(default_factory=lambda: [0.1, 0.4, 0.7])
    """Dropout after skip connections at each stage's start, decaying to 0 within it."""
    skip_cap: int | None = 2
    """Most skip connections the final normal cell may hold (null: no cap)."""

    name = "p-darts"

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.stage_ops)
        if n < 1 or any(not isinstance(k, int) or k < 1 for k in self.stage_ops):
            raise ConfigError(f"stage_ops must list at least one op count >= 1, got "
                              f"{self.stage_ops}")
        if list(self.stage_ops) != sorted(self.stage_ops, reverse=True):
            raise ConfigError(f"stage_ops must not grow from stage to stage (ops are only "
                              f"dropped), got {self.stage_ops}")
        if self.stage_layers is not None and len(self.stage_layers) != n:
            raise ConfigError(f"stage_layers has {len(self.stage_layers)} entries for {n} "
                              "stages; give one per stage_ops entry")
        if len(self.skip_dropout) != n:
            raise ConfigError(f"skip_dropout has {len(self.skip_dropout)} entries for {n} "
                              "stages; give one per stage_ops entry")
        if self.epochs < n:
            raise ConfigError(f"p-darts needs at least one epoch per stage: {self.epochs} "
                              f"epochs for {n} stages; raise epochs or drop stages")
        if self.skip_cap is not None and self.skip_cap < 0:
            raise ConfigError(f"skip_cap must be >= 0 (or null), got {self.skip_cap}")
        self.stage = 0

    # -- the plan --------------------------------------------------------------------------
    def depths(self) -> list[int]:
        if self.stage_layers is not None:
            return [int(d) for d in self.stage_layers]
        n = len(self.stage_ops)
        return [max(1, int(self.layers * (s + 1) / n + 0.5)) for s in range(n)]

    def stage_epochs(self) -> list[tuple[int, int]]:
        """(first epoch, number of epochs) of each stage; later stages get the remainder."""
        n = len(self.stage_ops)
        base, extra = divmod(self.epochs, n)
        counts = [base + (1 if s >= n - extra else 0) for s in range(n)]
        starts = [sum(counts[:s]) for s in range(n)]
        return list(zip(starts, counts))

    def stage_of(self, epoch: int) -> int:
        return max(s for s, (start, _) in enumerate(self.stage_epochs()) if epoch >= start)

    # -- building a stage -----------------------------------------------------------------
    def setup_model(self, space: DartsSpace, in_channels: int, n_classes: int, image_size: int,
                    device: torch.device, class_weights: torch.Tensor | None = None) -> None:
        self._model_args = (in_channels, n_classes, image_size, device, class_weights)
        self.space = space
        self.enter_stage(0, {t: [list(space.ops)] * space.n_edges for t in CELL_TYPES})

    def enter_stage(self, stage: int, edge_ops: dict[str, list[list[str]]]) -> None:
        """A fresh supernet, architecture weights and optimizers for ``stage``."""
        self.stage = stage
        self.edge_ops = edge_ops
        in_channels, n_classes, image_size, device, class_weights = self._model_args
        super().setup_model(self.space, in_channels, n_classes, image_size, device,
                            class_weights)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_optim, T_max=self.stage_epochs()[stage][1], eta_min=self.w_lr_min)

    def build_supernet(self, in_channels: int, n_classes: int, image_size: int) -> Supernet:
        net = Supernet(self.space, in_channels, n_classes, image_size, channels=self.channels,
                       layers=self.depths()[self.stage], edge_ops=self.edge_ops,
                       edge_factory=SkipDropMixedOp)
        return to_channels_last(net.to(self.device))

    def begin_epoch(self, epoch: int) -> None:
        stage = self.stage_of(epoch)
        if stage != self.stage:
            n_keep = min(self.stage_ops[stage], len(self.space.ops))
            weights = self.derive_weights(self.arch)
            edge_ops = {t: keep_strongest(weights[t], self.edge_ops[t], self.space.ops, n_keep)
                        for t in CELL_TYPES}
            get_logger().info("p-darts: stage %d/%d: %d cells, %d ops per edge", stage + 1,
                              len(self.stage_ops), self.depths()[stage], n_keep)
            self.enter_stage(stage, edge_ops)
        start, count = self.stage_epochs()[stage]
        self.skip_rate = self.skip_dropout[stage] * (count - (epoch - start) - 1) / count
        set_skip_dropout(self.net, self.skip_rate)

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        if self.order != 1:
            return super().arch_step(xt, yt, xv, yv)
        # a shallow first stage may have no reduction cell: its alphas get no gradient
        params = list(self.arch.parameters())
        loss = self.loss_fn(self.net(xv, self.arch_weights(self.arch, training=True)), yv)
        for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
            p.grad = torch.zeros_like(p) if g is None else g
        self.a_optim.step()

    def alphas_frozen(self, epoch: int) -> bool:
        return epoch - self.stage_epochs()[self.stage_of(epoch)][0] < self.warmup_epochs

    # -- weights over the space's full op list --------------------------------------------
    def derive_weights(self, arch: nn.Module) -> dict[str, torch.Tensor]:
        """The stage's softmax placed in the columns of the space's ops (dropped ops: 0)."""
        soft = arch.softmax()
        out = {}
        for t in CELL_TYPES:
            index = torch.tensor([[self.space.ops.index(op) for op in ops]
                                  for ops in self.edge_ops[t]], device=soft[t].device)
            full = soft[t].new_zeros(self.space.n_edges, len(self.space.ops))
            out[t] = full.scatter(1, index, soft[t])
        return out

    def derive_genotype(self) -> Genotype:
        weights = self.derive_weights(self.arch)
        genotype = self.space.derive(weights)
        if self.skip_cap is None:
            return genotype
        normal = cap_skips(weights["normal"], self.space.ops, self.space.nodes, self.skip_cap)
        if normal != genotype.normal:
            get_logger().info("p-darts: normal cell capped at %d skip connections (%d derived)",
                              self.skip_cap, genotype.normal.count(SKIP_OPS))
        return Genotype(normal, genotype.reduce)

    def sample_cell(self, kind: str, gen: torch.Generator) -> CellGenotype:
        cell = super().sample_cell(kind, gen)
        if kind != "normal" or self.skip_cap is None:
            return cell
        return cap_sampled_skips(cell, self.derive_weights(self.arch)["normal"],
                                 self.space.ops, self.skip_cap)

    # -- records and checkpoints -------------------------------------------------------------
    def epoch_record(self, epoch: int) -> dict[str, Any]:
        ops = self.arch.softmax()
        return {**super().epoch_record(epoch), "stage": self.stage + 1,
                # over the stage's ops (the derive weights hold zeros for dropped ones)
                "entropy": {t: normalized_entropy(ops[t]) for t in CELL_TYPES},
                "layers": self.depths()[self.stage],
                "ops_per_edge": len(self.edge_ops["normal"][0]),
                "skip_dropout": getattr(self, "skip_rate", 0.0)}

    def state_dict(self, epoch: int, history: list[dict]) -> dict[str, Any]:
        return {**super().state_dict(epoch, history), "stage": self.stage,
                "edge_ops": self.edge_ops}

    def load_state_dict(self, state: dict[str, Any]) -> int:
        if int(state["stage"]) != self.stage or state["edge_ops"] != self.edge_ops:
            self.enter_stage(int(state["stage"]), state["edge_ops"])
        return super().load_state_dict(state)

    def search(self, ctx: SearchContext) -> SearchResult:
        result = super().search(ctx)
        result.extra["supernet"]["stage_layers"] = self.depths()
        result.extra["supernet"]["stages_run"] = self.stage + 1
        return result
