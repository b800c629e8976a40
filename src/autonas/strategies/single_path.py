"""Single-path training of the DARTS supernet, shared by GDAS, ENAS and SPOS.

A path is one op per edge (or none: the edge is unused). It reaches the supernet as
one-hot weights plus ``active`` (one op index per edge), so only the path's ops run
forward and backward, and every path reads and updates the same shared weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..spaces.darts import CELL_TYPES, DartsSpace
from ..spaces.genotype import CellGenotype, Genotype
from ..spaces.ops import ZERO_OPS
from ..training.budget import Deadline
from ..training.loop import predict_logits
from ..training.metrics import auc_roc
from .base import SearchContext, SearchResult

Path = dict[str, list[int | None]]
"""Per cell type, the index (into the supernet's op list) of the op on each edge; None
where the edge is unused."""

Forward = tuple[dict[str, torch.Tensor], dict[str, list[list[int]]]]
"""(weights, active): what ``Supernet.forward`` takes for a path."""

PATH_OBJECTIVES = ("accuracy", "auc")


def edge_index(node: int, j: int) -> int:
    """Index of the edge from state ``j`` into intermediate node ``node``."""
    return node * (node + 3) // 2 + j


def genotype_path(genotype: Genotype, ops: Sequence[str], n_edges: int) -> Path:
    """The path a genotype selects in a supernet whose edges hold ``ops``."""
    path: Path = {}
    for kind, cell in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        edges: list[int | None] = [None] * n_edges
        for node, pairs in enumerate(cell.nodes):
            for op, j in pairs:
                edges[edge_index(node, j)] = list(ops).index(op)
        path[kind] = edges
    return path


def path_forward(path: Path, n_ops: int, device: torch.device) -> Forward:
    """One-hot weights and ``active`` op lists for ``path``."""
    weights, active = {}, {}
    for kind, edges in path.items():
        w = torch.zeros(len(edges), n_ops, device=device)
        for e, k in enumerate(edges):
            if k is not None:
                w[e, k] = 1.0
        weights[kind] = w
        active[kind] = [[] if k is None else [k] for k in edges]
    return weights, active


def random_genotype(space: DartsSpace, gen: torch.Generator | None = None) -> Genotype:
    """A uniform path: per node two distinct inputs, one non-zero op for each (torch RNG,
    so a checkpoint of the RNG state makes the sequence of paths resumable)."""
    real = [op for op in space.ops if op not in ZERO_OPS]

    def cell() -> CellGenotype:
        nodes = []
        for i in range(space.nodes):
            inputs = sorted(torch.randperm(i + 2, generator=gen)[:2].tolist())
            ops = torch.randint(len(real), (len(inputs),), generator=gen).tolist()
            nodes.append(tuple((real[k], j) for k, j in zip(ops, inputs)))
        return CellGenotype(tuple(nodes))

    return Genotype(cell(), cell())


def path_score(logits: torch.Tensor, y: torch.Tensor, objective: str) -> float:
    """Accuracy, or AUC (accuracy where a batch holds a single class)."""
    y = y.long().cpu()
    logits = logits.detach().float().cpu()
    accuracy = float((logits.argmax(1) == y).float().mean())
    if objective == "accuracy":
        return accuracy
    auc = auc_roc(y.numpy(), logits.softmax(1).numpy())
    return accuracy if math.isnan(auc) else auc


def check_objective(objective: str) -> None:
    if objective not in PATH_OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(PATH_OBJECTIVES)}, got "
                          f"{objective!r}")


class SinglePathMixin:
    """Weight steps, supernet evaluation and path scoring on single paths.

    A strategy supplies ``train_path()`` (the path of the next weight step) and
    ``eval_path()`` (the path evaluated after each epoch). ``selection_share`` of the search
    time is kept for choosing the final path (``score_genotypes`` stops at the search's
    real deadline).
    """

    selection_share: float = 0.0
    eval_samples: int = 512

    def train_path(self) -> Forward:
        raise NotImplementedError

    def eval_path(self) -> Forward:
        raise NotImplementedError

    def search(self, ctx: SearchContext) -> SearchResult:
        self.final_deadline = ctx.deadline
        left = ctx.deadline.remaining()
        if math.isfinite(left) and self.selection_share > 0:
            ctx = replace(ctx, deadline=Deadline(ctx.deadline.at - self.selection_share * left))
        return super().search(ctx)  # type: ignore[misc]

    def _setup(self, ctx: SearchContext) -> None:
        super()._setup(ctx)  # type: ignore[misc]
        self.recorder = ctx.recorder
        x, y = self.arch_eval
        n = min(len(y), self.eval_samples)
        g = torch.Generator().manual_seed(ctx.seed + 21)
        idx = torch.randperm(len(y), generator=g)[:n]
        self.score_data = (x[idx], y[idx])

    def forward_path(self, x: torch.Tensor, path: Forward) -> torch.Tensor:
        weights, active = path
        return self.net(x, weights, active)

    def weight_step(self, xt: torch.Tensor, yt: torch.Tensor) -> float:
        self.w_optim.zero_grad(set_to_none=True)
        with torch.no_grad():
            path = self.train_path()
        return self.descend(self.loss_fn(self.forward_path(xt, path), yt))

    def evaluate_supernet(self) -> tuple[float, float]:
        x, y = self.arch_eval
        with torch.no_grad():
            path = self.eval_path()
        logits = predict_logits(self.net, x, normalizer=self.normalizer, device=self.device,
                                batch_size=128, forward=lambda xb: self.forward_path(xb, path))
        y = y.long()
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())

    def genotype_forward(self, genotype: Genotype) -> Forward:
        ops = self.net.edge_ops["normal"][0]
        return path_forward(genotype_path(genotype, ops, self.space.n_edges), len(ops),
                            self.device)

    def score_genotype(self, genotype: Genotype, objective: str) -> float:
        """The objective of a path on held-out data, with the supernet's shared weights
        (its BatchNorms normalise with each batch's statistics, so no recalibration is
        needed)."""
        x, y = self.score_data
        path = self.genotype_forward(genotype)
        logits = predict_logits(self.net, x, normalizer=self.normalizer, device=self.device,
                                batch_size=256, forward=lambda xb: self.forward_path(xb, path))
        return path_score(logits, y, objective)

    def selection_time_left(self, seconds: float) -> bool:
        deadline = getattr(self, "final_deadline", None)
        return deadline is None or deadline.fits(seconds)

    def write_paths(self, rows: list[dict[str, Any]]) -> None:
        """The scored paths, best first (``search/paths.json``), for reports."""
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.write_json("search/paths.json", rows)


def one_hot_argmax(alphas: dict[str, torch.Tensor]) -> Forward:
    """The argmax op of every edge as a path (GDAS' evaluation path)."""
    weights, active = {}, {}
    for kind in CELL_TYPES:
        idx = alphas[kind].argmax(-1)
        weights[kind] = F.one_hot(idx, alphas[kind].shape[-1]).to(alphas[kind].dtype)
        active[kind] = idx.view(-1, 1).tolist()
    return weights, active
