"""SPOS, single-path one-shot (Guo et al., 2020): train the supernet on uniformly sampled
paths, then search paths by evolution, scoring each with the inherited weights.

Uniform sampling trains every op of every edge equally often, so the supernet ranks paths
without the bias that jointly learned architecture weights give (the source of DARTS'
collapse). After the epochs, an evolutionary search (top-k parents, mutation and
crossover per node) scores candidate paths on held-out data; the supernet's BatchNorms
use each batch's statistics, which recalibrates them for every path.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..run import get_logger
from ..spaces.darts import DartsSpace
from ..spaces.genotype import CellGenotype, Genotype
from ..spaces.ops import ZERO_OPS
from . import register_strategy
from .oneshot import OneShotStrategy
from .single_path import Forward, SinglePathMixin, check_objective, random_genotype


class NoArchParams(nn.Module):
    """SPOS learns no architecture weights during training; the optimizer the one-shot
    machinery builds for them gets one empty tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(0))


def mutate(genotype: Genotype, space: DartsSpace, rng: random.Random, prob: float) -> Genotype:
    """Redraw each node's inputs, and each edge's op, with probability ``prob``."""
    real = [op for op in space.ops if op not in ZERO_OPS]

    def cell(c: CellGenotype) -> CellGenotype:
        nodes = []
        for i, edges in enumerate(c.nodes):
            inputs = [j for _, j in edges]
            if rng.random() < prob:
                inputs = sorted(rng.sample(range(i + 2), len(inputs)))
            ops = [rng.choice(real) if rng.random() < prob else op for op, _ in edges]
            nodes.append(tuple(zip(ops, inputs)))
        return CellGenotype(tuple(nodes))

    return Genotype(cell(genotype.normal), cell(genotype.reduce))


def crossover(a: Genotype, b: Genotype, rng: random.Random) -> Genotype:
    """Each node of each cell from one parent or the other."""

    def cell(x: CellGenotype, y: CellGenotype) -> CellGenotype:
        return CellGenotype(tuple(rng.choice((p, q)) for p, q in zip(x.nodes, y.nodes)))

    return Genotype(cell(a.normal, b.normal), cell(a.reduce, b.reduce))


def _key(genotype: Genotype) -> str:
    return json.dumps(genotype.to_dict())


@register_strategy("spos", "Single-path one-shot: uniform path sampling trains the supernet, "
                   "then evolution over paths scored with the inherited weights")
@dataclass
class Spos(SinglePathMixin, OneShotStrategy):
    epochs: int = 50  # single-path steps cost a fraction of a DARTS step
    warmup_epochs: int = 0
    population: int = 16
    generations: int = 10
    mutation_prob: float = 0.1
    objective: str = "auc"
    """How paths are scored on held-out data: accuracy or auc."""
    eval_samples: int = 512
    """Held-out images (from the architecture half of the training split) per path score."""
    selection_share: float = 0.2
    """Share of the search time kept for the evolutionary search."""

    name = "spos"

    def __post_init__(self) -> None:
        check_objective(self.objective)
        if self.population < 2:
            raise ConfigError(f"population must be >= 2, got {self.population}")
        if self.generations < 0:
            raise ConfigError(f"generations must be >= 0, got {self.generations}")
        if not 0.0 <= self.selection_share < 1.0:
            raise ConfigError(f"selection_share must be in [0, 1), got {self.selection_share}")
        self._ranked: list[dict[str, Any]] | None = None

    def build_arch(self, space: DartsSpace, n_ops: int) -> nn.Module:
        return NoArchParams()

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        """Nothing to learn: the paths are uniform."""

    def alphas_frozen(self, epoch: int) -> bool:
        return False

    def train_path(self) -> Forward:
        return self.genotype_forward(random_genotype(self.space))

    def eval_path(self) -> Forward:
        # the same path every epoch, so the per-epoch numbers are comparable
        return self.genotype_forward(random_genotype(self.space,
                                                     torch.Generator().manual_seed(0)))

    def derive_weights(self, arch: nn.Module) -> dict[str, torch.Tensor]:
        """Uniform over the non-zero ops: the distribution paths are trained from."""
        real = torch.tensor([op not in ZERO_OPS for op in self.space.ops], dtype=torch.float32)
        w = (real / real.sum()).expand(self.space.n_edges, -1)
        return {"normal": w.clone(), "reduce": w.clone()}

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "paths": "uniform"}

    def progress_text(self, record: dict[str, Any]) -> str:
        return "uniform single-path training"

    # -- evolution ---------------------------------------------------------------------
    def evolve(self) -> list[dict[str, Any]]:
        """Scored paths of the evolutionary search, best first."""
        rng = random.Random(self.gen_a.initial_seed() + 5)
        scored: dict[str, dict[str, Any]] = {}
        timer = [0.0]

        def score(genotypes: list[Genotype], generation: int) -> None:
            for g in genotypes:
                k = _key(g)
                if k in scored or (scored and not self.selection_time_left(timer[0])):
                    continue
                start = time.monotonic()
                value = self.score_genotype(g, self.objective)
                timer[0] = max(timer[0], time.monotonic() - start)
                scored[k] = {"genotype": g.to_dict(), self.objective: value,
                             "generation": generation}

        score([self.space.random_genotype(rng) for _ in range(self.population)], 0)
        top_k = max(2, self.population // 4)
        for generation in range(1, self.generations + 1):
            if not self.selection_time_left(timer[0]):
                break
            ranked = sorted(scored.values(), key=lambda r: -r[self.objective])
            parents = [Genotype.from_dict(r["genotype"]) for r in ranked[:top_k]]
            children = [mutate(rng.choice(parents), self.space, rng, self.mutation_prob)
                        for _ in range(self.population // 2)]
            children += [crossover(rng.choice(parents), rng.choice(parents), rng)
                         for _ in range(self.population - len(children))]
            score(children, generation)
        return sorted(scored.values(), key=lambda r: -r[self.objective])

    def derive_genotype(self) -> Genotype:
        if self._ranked is None:
            self._ranked = self.evolve()
            self.write_paths(self._ranked)
            best = self._ranked[0]
            get_logger().info("spos: %d paths scored by evolution, best validation %s %.4f "
                              "(generation %d)", len(self._ranked), self.objective,
                              best[self.objective], best["generation"])
        return Genotype.from_dict(self._ranked[0]["genotype"])

    def sample_cell(self, kind: str, gen: torch.Generator) -> CellGenotype:
        """A cell of one of the best paths (the top quarter of the evolution)."""
        self.derive_genotype()
        assert self._ranked is not None
        top = self._ranked[: max(1, len(self._ranked) // 4)]
        genotype = Genotype.from_dict(top[int(torch.randint(len(top), (1,), generator=gen))]
                                      ["genotype"])
        return genotype.normal if kind == "normal" else genotype.reduce
