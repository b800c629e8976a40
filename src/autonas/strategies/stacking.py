"""Flexible cell stacking: one cell per position of the final network, each drawn from the
architecture distribution the search learned, instead of one normal and one reduction
cell repeated.

The architecture then carries ``"cells"``: one cell (a list of nodes) per network layer,
reduction cells at the reduction positions; ``"normal"`` and ``"reduce"`` keep the argmax
cells (what the report shows and collapse counts use).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import ConfigError
from ..spaces.darts import reduction_layers
from ..spaces.genotype import CellGenotype
from ..spaces.ops import ZERO_OPS


def sample_cell(weights: torch.Tensor, ops: Sequence[str], nodes: int, gen: torch.Generator,
                k: int = 2) -> CellGenotype:
    """A cell drawn from (n_edges, n_ops) architecture weights.

    Per node, ``k`` distinct inputs are drawn without replacement, each incoming edge with
    probability proportional to its strongest non-zero op weight (the quantity the argmax
    derivation ranks edges by); each drawn edge then gets an op with probability
    proportional to its non-zero op weights.
    """
    w = weights.detach().float().cpu().clamp_min(0.0).clone()
    real = torch.tensor([op not in ZERO_OPS for op in ops])
    if not real.any():
        raise ConfigError("the op set has no op besides 'none'; add at least one real op")
    w[:, ~real] = 0.0
    cell = []
    start = 0
    for node in range(nodes):
        n_in = node + 2
        block = w[start:start + n_in]
        strength = block.max(dim=1).values + 1e-12  # every input stays possible
        chosen = torch.multinomial(strength, min(k, n_in), replacement=False, generator=gen)
        edges = []
        for j in sorted(chosen.tolist()):
            p = block[j] if block[j].sum() > 0 else real.float()
            edges.append((ops[int(torch.multinomial(p, 1, generator=gen))], j))
        cell.append(tuple(edges))
        start += n_in
    return CellGenotype(tuple(cell))


def stack_cells(sample: Callable[[str], CellGenotype], layers: int) -> list[list]:
    """One cell per position of a ``layers``-cell network, ``sample(kind)`` drawing each."""
    if layers < 1:
        raise ConfigError(f"stacking_layers must be >= 1, got {layers}")
    reductions = reduction_layers(layers)
    return [sample("reduce" if i in reductions else "normal").to_list() for i in range(layers)]
