"""Discrete cell architectures (genotypes) and their derivation from architecture weights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from .ops import SKIP_OPS, ZERO_OPS

Edge = tuple[str, int]
"""(op name, index of the input state): states 0 and 1 are the cell inputs, 2+ the nodes."""


def edge_inputs(n_nodes: int) -> list[tuple[int, int]]:
    """(node, input state) for every edge of a cell, in the order architecture weights use."""
    return [(node, j) for node in range(n_nodes) for j in range(node + 2)]


@dataclass(frozen=True)
class CellGenotype:
    """For each intermediate node, the edges (op, input) summed into it."""

    nodes: tuple[tuple[Edge, ...], ...]

    def __post_init__(self) -> None:
        for i, edges in enumerate(self.nodes):
            for op, j in edges:
                if not 0 <= j < i + 2:
                    raise ConfigError(
                        f"node {i} takes input {j}, but only states 0..{i + 1} exist before it"
                    )
                if not isinstance(op, str):
                    raise ConfigError(f"node {i}: op must be a name, got {op!r}")

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def ops(self) -> list[str]:
        return [op for edges in self.nodes for op, _ in edges]

    def count(self, names: frozenset[str] = SKIP_OPS) -> int:
        return sum(op in names for op in self.ops())

    def to_list(self) -> list[list[list]]:
        return [[[op, j] for op, j in edges] for edges in self.nodes]

    @classmethod
    def from_list(cls, nodes: Sequence[Sequence[Sequence]]) -> CellGenotype:
        try:
            return cls(tuple(tuple((str(op), int(j)) for op, j in edges) for edges in nodes))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"a cell must be a list of nodes, each a list of [op, input] pairs: {exc}"
            ) from None


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell: everything needed to build the searched network."""

    normal: CellGenotype
    reduce: CellGenotype

    def to_dict(self) -> dict:
        return {"normal": self.normal.to_list(), "reduce": self.reduce.to_list()}

    @classmethod
    def from_dict(cls, d: dict) -> Genotype:
        missing = {"normal", "reduce"} - set(d)
        if missing:
            raise ConfigError(
                f"genotype is missing {sorted(missing)}: expected "
                '{"normal": [[[op, input], ...], ...], "reduce": [...]}'
            )
        return cls(CellGenotype.from_list(d["normal"]), CellGenotype.from_list(d["reduce"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Genotype:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"genotype file {p} does not exist")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"genotype file {p} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"genotype file {p} must hold a JSON object with 'normal' and "
                              "'reduce' cells")
        if "genotype" in data:  # a run's genotype.json wraps it with metadata
            data = data["genotype"]
        return cls.from_dict(data)

    def __str__(self) -> str:
        def cell(c: CellGenotype) -> str:
            return "; ".join(
                f"n{i}=" + "+".join(f"{op}({j})" for op, j in edges)
                for i, edges in enumerate(c.nodes)
            )

        return f"normal: {cell(self.normal)} | reduce: {cell(self.reduce)}"


def derive_cell(weights: torch.Tensor, ops: Sequence[str], n_nodes: int,
                k: int = 2) -> CellGenotype:
    """DARTS' discretisation: per node keep the ``k`` incoming edges whose strongest
    non-zero op weighs most, each with that op.

    ``weights`` is (n_edges, n_ops), already softmaxed (and scaled by any edge weights).
    """
    w = weights.detach().float().cpu()
    allowed = torch.tensor([op not in ZERO_OPS for op in ops])
    if not allowed.any():
        raise ConfigError("the op set has no op besides 'none'; add at least one real op")
    w = w.masked_fill(~allowed, float("-inf"))
    nodes = []
    start = 0
    for node in range(n_nodes):
        n_in = node + 2
        block = w[start:start + n_in]
        best_w, best_op = block.max(dim=1)
        # Stable tie-break: earlier input first, so equal weights give a deterministic cell.
        order = sorted(range(n_in), key=lambda j: (-float(best_w[j]), j))[: min(k, n_in)]
        nodes.append(tuple((ops[int(best_op[j])], j) for j in sorted(order)))
        start += n_in
    return CellGenotype(tuple(nodes))
