"""Cell (NNI's nn.Cell) in a user model space: labels, shapes, sample / validate / freeze,
loose ends, and the DARTS / single-path relaxations equal the frozen cell."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from autonas.errors import ConfigError
from autonas.spaces.model_space import Cell, ModelSpace, has_mutables
from autonas.strategies.model_oneshot import arch_path, path_forward
from autonas.strategies.model_supernet import ModelSupernet

C = 3
CPU = torch.device("cpu")


def conv(node: int, op: int) -> nn.Module:
    return nn.Conv2d(C, C, 3, padding=1)


def ops() -> dict:
    return {"conv": conv, "pool": nn.AvgPool2d(3, 1, 1), "skip": nn.Identity()}


class CellSpace(ModelSpace):
    def __init__(self, merge_op: str = "all", num_nodes: int = 3, num_ops_per_node: int = 2
                 ) -> None:
        super().__init__()
        self.stem0 = nn.Conv2d(1, C, 1)
        self.stem1 = nn.Conv2d(1, C, 3, padding=1)
        self.cell = Cell(ops(), num_nodes, num_ops_per_node, num_predecessors=2,
                         merge_op=merge_op, label="cell")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cell(self.stem0(x), self.stem1(x))


def test_labels_and_candidates_follow_nni() -> None:
    space = CellSpace()
    decisions = {d.label: d for d in space.decisions()}
    assert list(decisions) == [f"cell/{kind}_{i}_{k}" for i in range(3) for k in range(2)
                               for kind in ("input", "op")]
    assert decisions["cell/op_1_0"].values == ("conv", "pool", "skip")
    assert [len(decisions[f"cell/input_{i}_0"].values) for i in range(3)] == [2, 3, 4]
    assert space.size() == (3 * 2) ** 2 * (3 * 3) ** 2 * (3 * 4) ** 2
    convs = [m for m in space.cell.modules() if isinstance(m, nn.Conv2d)]
    assert len({id(m) for m in convs}) == 6  # one fresh conv per operation


def test_sample_validate_freeze_and_shapes() -> None:
    space = CellSpace()
    x = torch.randn(2, 1, 6, 6)
    assert space(x).shape == (2, 3 * C, 6, 6)  # merge 'all': every node
    rng = random.Random(0)
    for _ in range(5):
        arch = space.sample(rng)
        assert space.validate(arch) == arch
        model = space.freeze(arch)
        assert not has_mutables(model)
        assert model(x).shape == (2, 3 * C, 6, 6)


def test_frozen_cell_computes_the_chosen_graph() -> None:
    torch.manual_seed(0)
    space = CellSpace(num_nodes=2, num_ops_per_node=1)
    arch = {"cell/input_0_0": [1], "cell/op_0_0": "pool",
            "cell/input_1_0": [2], "cell/op_1_0": "conv"}
    model = space.freeze(arch)
    x = torch.randn(2, 1, 6, 6)
    s1 = space.stem1(x)
    n0 = nn.functional.avg_pool2d(s1, 3, 1, 1, count_include_pad=True)
    n1 = space.cell.nodes[1][0].op["conv"](n0)
    torch.testing.assert_close(model(x), torch.cat([n0, n1], 1))


def test_loose_end_keeps_only_unread_nodes() -> None:
    space = CellSpace(merge_op="loose_end", num_nodes=3, num_ops_per_node=1)
    x = torch.randn(2, 1, 6, 6)
    chain = {"cell/input_0_0": [0], "cell/op_0_0": "skip", "cell/input_1_0": [2],
             "cell/op_1_0": "skip", "cell/input_2_0": [3], "cell/op_2_0": "skip"}
    assert space.freeze(chain)(x).shape == (2, C, 6, 6)  # only the last node is loose
    fan = {**chain, "cell/input_1_0": [0], "cell/input_2_0": [1]}
    assert space.freeze(fan)(x).shape == (2, 3 * C, 6, 6)  # nobody reads a node


def one_hot(space: ModelSpace, arch: dict) -> dict:
    out = {}
    for d in space.decisions():
        w = torch.zeros(len(d.values))
        w[arch[d.label] if d.kind == "input" else [list(d.values).index(arch[d.label])]] = 1.0
        out[d.label] = w
    return out


def test_darts_relaxation_with_one_hot_weights_equals_the_frozen_cell() -> None:
    torch.manual_seed(0)
    space = CellSpace()
    net = ModelSupernet(space)
    assert len(net.relaxed) == 12
    x = torch.randn(2, 1, 6, 6)
    rng = random.Random(1)
    for _ in range(4):
        arch = space.sample(rng)
        torch.testing.assert_close(net(x, one_hot(space, arch)), space.freeze(arch)(x))


def test_loose_end_runs_single_paths_and_darts_refuses_it() -> None:
    torch.manual_seed(0)
    space = CellSpace(merge_op="loose_end")
    x = torch.randn(2, 1, 6, 6)
    with pytest.raises(ConfigError, match=r"merge_op='loose_end'.*merge_op='all'"):
        ModelSupernet(space)(x, one_hot(space, space.default_arch()))
    net = ModelSupernet(space, soft=False)
    rng = random.Random(2)
    for _ in range(4):
        arch = space.sample(rng)
        forward = path_forward(net.relaxed, arch_path(net.relaxed, arch), CPU)
        torch.testing.assert_close(net(x, *forward), space.freeze(arch)(x))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_nodes": 0}, "num_nodes must be an int >= 1"),
    ({"merge_op": "sum"}, "merge_op must be one of all, loose_end"),
    ({"op_candidates": []}, "op_candidates is empty"),
    ({"op_candidates": ["conv"]}, "nn.Module instances or factories"),
    ({"op_candidates": [lambda: 3]}, "must return an nn.Module"),
])
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    args = {"op_candidates": ops(), "num_nodes": 2, **kwargs}
    with pytest.raises(ConfigError, match=message):
        Cell(**args)


def test_wrong_number_of_inputs_is_an_error() -> None:
    cell = Cell([nn.Identity()], 2, num_predecessors=2, label="c")
    with pytest.raises(ValueError, match="takes 2 input"):
        cell(torch.zeros(1, 1, 2, 2))
    assert cell([torch.zeros(1, 1, 2, 2)] * 2).shape == (1, 2, 2, 2)
