"""ENAS (Pham et al., 2018): a controller samples cells whose paths share the supernet's
weights; the controller learns by REINFORCE from the sampled path's validation reward.

The controller is a small LSTM that decides the cells autoregressively: for each cell
type, for each node, an input and an op, twice (the second input differs from the first).
Each step trains the shared weights on a path drawn from the controller, and the
controller on the reward (accuracy or AUC) of another drawn path on a validation batch,
with a moving-average baseline and an entropy bonus. The final cells are the best, on
held-out data, of ``derive_samples`` paths drawn from the trained controller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..run import get_logger
from ..spaces.darts import CELL_TYPES, DartsSpace
from ..spaces.genotype import CellGenotype, Genotype
from ..spaces.ops import ZERO_OPS
from . import register_strategy
from .oneshot import OneShotStrategy
from .single_path import (
    Forward,
    SinglePathMixin,
    check_objective,
    edge_index,
    path_score,
)


def reinforce_controller(strategy: Any, reward: float, log_prob: torch.Tensor,
                         entropy: torch.Tensor) -> None:
    """One REINFORCE step of an ENAS strategy's controller (``strategy.arch``) against a
    moving-average baseline. The controller holds ``baseline`` and ``updates`` buffers, so a
    resume keeps them."""
    ctrl = strategy.arch
    with torch.no_grad():
        if int(ctrl.updates) == 0:
            ctrl.baseline.fill_(reward)
        else:
            decay = strategy.baseline_decay
            ctrl.baseline.mul_(decay).add_((1 - decay) * reward)
        ctrl.updates += 1
    advantage = reward - float(ctrl.baseline)
    loss = -advantage * log_prob - strategy.entropy_weight * entropy
    strategy.a_optim.zero_grad(set_to_none=True)
    loss.backward()
    strategy.a_optim.step()


class Controller(nn.Module):
    """An LSTM policy over the decisions of both cells; also holds the reward baseline
    (a buffer, so checkpoints carry it)."""

    def __init__(self, nodes: int, ops: list[str], hidden: int = 64,
                 tanh_constant: float = 2.5) -> None:
        super().__init__()
        self.nodes = nodes
        self.ops = list(ops)
        self.tanh_constant = tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.op_embed = nn.Embedding(len(ops), hidden)
        self.input_embed = nn.Embedding(nodes + 1, hidden)
        self.op_head = nn.Linear(hidden, len(ops))
        self.input_head = nn.Linear(hidden, nodes + 1)
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def _logits(self, raw: torch.Tensor, forbidden: list[int]) -> torch.Tensor:
        logits = self.tanh_constant * torch.tanh(raw)  # ENAS' bounded logits
        if forbidden:
            logits = logits.clone()
            logits[forbidden] = float("-inf")
        return logits

    def sample(self, gen: torch.Generator | None = None, greedy: bool = False
               ) -> tuple[Genotype, torch.Tensor, torch.Tensor]:
        """(cells, summed log-probability, summed entropy) of one draw."""
        h = torch.zeros_like(self.start)
        c = torch.zeros_like(self.start)
        x = self.start
        log_prob = self.start.new_zeros(())
        entropy = self.start.new_zeros(())

        def choose(logits: torch.Tensor) -> int:
            nonlocal log_prob, entropy
            logp = F.log_softmax(logits, dim=-1)
            p = logp.exp()
            k = int(p.argmax()) if greedy else int(torch.multinomial(p.detach(), 1,
                                                                     generator=gen))
            log_prob = log_prob + logp[k]
            entropy = entropy - (p * logp.nan_to_num(neginf=0.0)).sum()
            return k

        cells = []
        for _ in CELL_TYPES:
            nodes = []
            for i in range(self.nodes):
                edges: list[tuple[str, int]] = []
                for _slot in range(2):
                    h, c = self.lstm(x, (h, c))
                    taken = [j for _, j in edges]
                    j = choose(self._logits(self.input_head(h)[0, : i + 2], taken))
                    x = self.input_embed.weight[j: j + 1]
                    h, c = self.lstm(x, (h, c))
                    k = choose(self._logits(self.op_head(h)[0], []))
                    x = self.op_embed.weight[k: k + 1]
                    edges.append((self.ops[k], j))
                nodes.append(tuple(sorted(edges, key=lambda e: e[1])))
            cells.append(CellGenotype(tuple(nodes)))
        return Genotype(*cells), log_prob, entropy


@register_strategy("enas", "ENAS: an LSTM controller samples cells on shared supernet "
                   "weights, trained with REINFORCE on validation reward")
@dataclass
class Enas(SinglePathMixin, OneShotStrategy):
    epochs: int = 50  # single-path steps cost a fraction of a DARTS step
    alpha_lr: float = 3.5e-3
    alpha_weight_decay: float = 0.0
    controller_hidden: int = 64
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.95
    objective: str = "auc"
    """Reward of a sampled path on a validation batch: accuracy or auc."""
    derive_samples: int = 16
    """Paths drawn from the trained controller; the best on held-out data is the result."""

    name = "enas"
    data_parallel = False  # the controller's reward would be one rank's shard only
    selection_share = 0.05
    frequency_samples = 64

    def __post_init__(self) -> None:
        check_objective(self.objective)
        if self.derive_samples < 1:
            raise ConfigError(f"derive_samples must be >= 1, got {self.derive_samples}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        self._frequency: tuple[int, dict[str, torch.Tensor]] | None = None
        self._best: Genotype | None = None

    def build_arch(self, space: DartsSpace, n_ops: int) -> nn.Module:
        real = [op for op in space.ops if op not in ZERO_OPS]
        return Controller(space.nodes, real, hidden=self.controller_hidden)

    def train_path(self) -> Forward:
        genotype, _, _ = self.arch.sample()
        return self.genotype_forward(genotype)

    def eval_path(self) -> Forward:
        genotype, _, _ = self.arch.sample(greedy=True)
        return self.genotype_forward(genotype)

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        genotype, log_prob, entropy = self.arch.sample()
        with torch.no_grad():
            logits = self.forward_path(xv, self.genotype_forward(genotype))
        reward = path_score(logits, yv, self.objective)
        reinforce_controller(self, reward, log_prob, entropy)

    def derive_weights(self, arch: nn.Module) -> dict[str, torch.Tensor]:
        """How often the controller puts each op on each edge (a fixed set of draws): the
        distribution the records, the genotype per epoch and flexible stacking read."""
        key = int(arch.updates)
        if self._frequency is None or self._frequency[0] != key:
            gen = torch.Generator().manual_seed(1234)
            n_ops = len(self.space.ops)
            counts = {t: torch.zeros(self.space.n_edges, n_ops) for t in CELL_TYPES}
            with torch.no_grad():
                for _ in range(self.frequency_samples):
                    genotype, _, _ = arch.sample(gen)
                    for t, cell in zip(CELL_TYPES, (genotype.normal, genotype.reduce)):
                        for node, edges in enumerate(cell.nodes):
                            for op, j in edges:
                                counts[t][edge_index(node, j), self.space.ops.index(op)] += 1
            self._frequency = (key, {t: c / self.frequency_samples for t, c in counts.items()})
        return self._frequency[1]

    def derive_genotype(self) -> Genotype:
        if self._best is not None:
            return self._best
        gen = torch.Generator().manual_seed(self.gen_a.initial_seed() + 7)
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i in range(self.derive_samples):
            if i and not self.selection_time_left(rows[-1]["seconds"]):
                break
            with torch.no_grad():
                genotype, _, _ = self.arch.sample(gen, greedy=(i == 0))
            key = str(genotype)
            if key in seen:
                continue
            seen.add(key)
            start = time.monotonic()
            score = self.score_genotype(genotype, self.objective)
            rows.append({"genotype": genotype.to_dict(), self.objective: score,
                         "seconds": time.monotonic() - start})
        rows.sort(key=lambda r: -r[self.objective])
        self.write_paths(rows)
        get_logger().info("enas: best of %d sampled paths has validation %s %.4f", len(rows),
                          self.objective, rows[0][self.objective])
        self._best = Genotype.from_dict(rows[0]["genotype"])
        return self._best

    def sample_cell(self, kind: str, gen: torch.Generator) -> CellGenotype:
        with torch.no_grad():
            genotype, _, _ = self.arch.sample(gen)
        return genotype.normal if kind == "normal" else genotype.reduce
