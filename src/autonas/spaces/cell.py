"""``Cell``: a NAS-Bench / DARTS-style cell written inside a user model space (NNI's
``nn.Cell``).

A cell has ``num_predecessors`` inputs and ``num_nodes`` nodes. Each node sums
``num_ops_per_node`` operations; each operation is a ``LayerChoice`` over
``op_candidates`` applied to one input picked by an ``InputChoice`` among the cell's inputs
and the nodes before it. The output concatenates (along channels) every node
(``merge_op='all'``) or only the nodes no other node reads (``'loose_end'``).

The decisions are ordinary mutables inside the cell, labelled ``{label}/op_{node}_{k}``
and ``{label}/input_{node}_{k}``, so ``sample``, ``validate``, ``freeze``, the multi-trial
strategies and the one-shot supernets (DARTS included, for ``merge_op='all'``) work on a
space holding cells with nothing else to do.

``op_candidates``: a list or dict (names become the choice's values) of modules, copied for
every operation, or of factories called as ``factory(node_index, op_index)`` (or with no
argument) for a fresh module each. An operation's module does not learn which input it
gets, so candidates must accept every input shape (keep the cell's inputs alike, e.g. with
a preprocessing layer before the cell).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .mutables import InputChoice, LayerChoice

MERGE_OPS = ("all", "loose_end")
Candidates = Sequence[nn.Module | Callable[..., nn.Module]] | dict[
    str, nn.Module | Callable[..., nn.Module]]


def _make(candidate: Any, node: int, op: int, where: str) -> nn.Module:
    if isinstance(candidate, nn.Module):
        return copy.deepcopy(candidate)
    if not callable(candidate):
        raise ConfigError(f"{where}: op candidates must be nn.Module instances or factories, "
                          f"got {type(candidate).__name__}")
    try:
        n_args = len(inspect.signature(candidate).parameters)
    except (TypeError, ValueError):
        n_args = 0
    module = candidate(node, op) if n_args >= 2 else candidate()
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{where}: an op factory must return an nn.Module, got "
                          f"{type(module).__name__}")
    return module


def current_inputs(chooser: nn.Module) -> list[int] | None:
    """The input indices an input chooser reads now (frozen, unfrozen default, or a single
    path of a supernet); None where every input is mixed (DARTS)."""
    indices = getattr(chooser, "current_indices", None)
    return None if indices is None else indices()


class CellOperation(nn.Module):
    """One operation of a node: which input (``input``), and what is applied to it (``op``)."""

    def __init__(self, input_choice: InputChoice, op: LayerChoice) -> None:
        super().__init__()
        self.input = input_choice
        self.op = op

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.op(self.input(states))


class Cell(nn.Module):
    """A cell of ``num_nodes`` nodes over ``num_predecessors`` inputs (see the module doc).

    ``forward(*inputs)`` takes the ``num_predecessors`` input tensors (or one list of them).
    """

    def __init__(self, op_candidates: Candidates, num_nodes: int, num_ops_per_node: int = 1,
                 num_predecessors: int = 1, merge_op: str = "all",
                 label: str | None = None) -> None:
        super().__init__()
        where = f"Cell {label!r}" if label else "Cell"
        for name, value in (("num_nodes", num_nodes), ("num_ops_per_node", num_ops_per_node),
                            ("num_predecessors", num_predecessors)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: {name} must be an int >= 1, got {value!r}")
        if merge_op not in MERGE_OPS:
            raise ConfigError(f"{where}: merge_op must be one of {', '.join(MERGE_OPS)}, got "
                              f"{merge_op!r}")
        named = isinstance(op_candidates, dict)
        items = list(op_candidates.items()) if named else list(enumerate(op_candidates))
        if not items:
            raise ConfigError(f"{where}: op_candidates is empty; give at least one operation")
        self.num_nodes = num_nodes
        self.num_ops_per_node = num_ops_per_node
        self.num_predecessors = num_predecessors
        self.merge_op = merge_op
        self.label = label
        nodes = []
        for i in range(num_nodes):
            operations = []
            for k in range(num_ops_per_node):
                made = {str(key): _make(c, i, k, where) for key, c in items}
                op = LayerChoice(made if named else list(made.values()),
                                 label=f"{label}/op_{i}_{k}" if label else None)
                chooser = InputChoice(num_predecessors + i, 1,
                                      label=f"{label}/input_{i}_{k}" if label else None)
                operations.append(CellOperation(chooser, op))
            nodes.append(nn.ModuleList(operations))
        self.nodes = nn.ModuleList(nodes)

    def forward(self, *inputs: Any) -> torch.Tensor:
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        if len(inputs) != self.num_predecessors:
            raise ValueError(f"Cell {self.label!r} takes {self.num_predecessors} input(s), got "
                             f"{len(inputs)}")
        states = list(inputs)
        for operations in self.nodes:
            outputs = [operation(states) for operation in operations]
            total = outputs[0]
            for out in outputs[1:]:
                total = total + out
            states.append(total)
        nodes = states[self.num_predecessors:]
        if self.merge_op == "all":
            return torch.cat(nodes, dim=1)
        return torch.cat([nodes[i] for i in self.loose_ends()], dim=1)

    def loose_ends(self) -> list[int]:
        """The nodes no node reads as its input, for the current choice of inputs."""
        read: set[int] = set()
        for operations in self.nodes:
            for operation in operations:
                picked = current_inputs(operation.input)
                if picked is None:
                    raise ConfigError(
                        f"Cell {self.label!r} with merge_op='loose_end': which nodes are loose "
                        "ends depends on the chosen inputs, so the cell's output cannot mix all "
                        "inputs (DARTS). Use merge_op='all', or a single-path strategy (gdas, "
                        "enas, spos, proxyless) or a multi-trial one.")
                read.update(picked)
        return [i for i in range(self.num_nodes) if self.num_predecessors + i not in read]

    def extra_repr(self) -> str:
        return (f"label={self.label!r}, num_nodes={self.num_nodes}, "
                f"num_ops_per_node={self.num_ops_per_node}, "
                f"num_predecessors={self.num_predecessors}, merge_op={self.merge_op!r}")


__all__ = ["MERGE_OPS", "Cell", "CellOperation", "current_inputs"]
