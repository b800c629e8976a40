"""Genotypes: derivation from architecture weights, JSON round trips, random genotypes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from autonas.errors import ConfigError
from autonas.spaces.darts import DartsSpace
from autonas.spaces.genotype import CellGenotype, Genotype, derive_cell, edge_inputs
from autonas.spaces.ops import DARTS_OPS, ZERO_OPS

OPS = list(DARTS_OPS)


def _idx(op: str) -> int:
    return OPS.index(op)


def _edge(node: int, j: int) -> int:
    return edge_inputs(4).index((node, j))


def test_edge_inputs_order() -> None:
    inputs = edge_inputs(4)
    assert len(inputs) == 14
    assert inputs[:5] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert inputs[-1] == (3, 4)
    assert len(edge_inputs(2)) == 5


def _hand_weights() -> torch.Tensor:
    w = torch.zeros(14, len(OPS))
    # node 0: both inputs are kept; on edge (0, 0) 'none' weighs most but must be skipped.
    w[_edge(0, 0), _idx("none")] = 0.9
    w[_edge(0, 0), _idx("sep_conv_3x3")] = 0.05
    w[_edge(0, 0), _idx("max_pool_3x3")] = 0.04
    w[_edge(0, 1), _idx("max_pool_3x3")] = 0.3
    w[_edge(0, 1), _idx("skip_connect")] = 0.2
    # node 1: input 0 is strongest only through 'none': it must lose to inputs 1 and 2.
    w[_edge(1, 0), _idx("none")] = 0.99
    w[_edge(1, 0), _idx("skip_connect")] = 0.01
    w[_edge(1, 1), _idx("dil_conv_3x3")] = 0.2
    w[_edge(1, 2), _idx("avg_pool_3x3")] = 0.5
    w[_edge(1, 2), _idx("sep_conv_5x5")] = 0.4
    # node 2: a three-way tie between inputs 0, 2 and 3: the earlier inputs (0, 2) win.
    w[_edge(2, 0), _idx("sep_conv_5x5")] = 0.4
    w[_edge(2, 1), _idx("dil_conv_5x5")] = 0.1
    w[_edge(2, 2), _idx("skip_connect")] = 0.4
    w[_edge(2, 3), _idx("dil_conv_5x5")] = 0.4
    # node 3: input 3 has 'none' at 0.95 and nothing else; inputs 4 and 0 win.
    w[_edge(3, 0), _idx("max_pool_3x3")] = 0.3
    w[_edge(3, 1), _idx("avg_pool_3x3")] = 0.2
    w[_edge(3, 2), _idx("sep_conv_5x5")] = 0.25
    w[_edge(3, 3), _idx("none")] = 0.95
    w[_edge(3, 4), _idx("sep_conv_3x3")] = 0.6
    return w


def test_derive_cell_exact_genotype() -> None:
    cell = derive_cell(_hand_weights(), OPS, 4)
    assert cell.nodes == (
        (("sep_conv_3x3", 0), ("max_pool_3x3", 1)),
        (("dil_conv_3x3", 1), ("avg_pool_3x3", 2)),
        (("sep_conv_5x5", 0), ("skip_connect", 2)),
        (("max_pool_3x3", 0), ("sep_conv_3x3", 4)),
    )
    assert "none" not in cell.ops()


def test_derive_cell_tie_is_deterministic_and_order_independent_of_row_values() -> None:
    w = _hand_weights()
    # the same weights shifted by a constant on real ops keep the same genotype
    shifted = w.clone()
    shifted[:, 1:] += 0.5
    assert derive_cell(shifted, OPS, 4) == derive_cell(w, OPS, 4)
    # breaking the tie in favour of input 3 changes node 2 to inputs (0, 3)
    w[_edge(2, 3), _idx("dil_conv_5x5")] = 0.41
    cell = derive_cell(w, OPS, 4)
    assert cell.nodes[2] == (("sep_conv_5x5", 0), ("dil_conv_5x5", 3))


def test_derive_cell_k1_and_from_softmax() -> None:
    cell = derive_cell(_hand_weights(), OPS, 4, k=1)
    assert cell.nodes == (
        (("max_pool_3x3", 1),),
        (("avg_pool_3x3", 2),),
        (("sep_conv_5x5", 0),),
        (("sep_conv_3x3", 4),),
    )
    torch.manual_seed(0)
    w = torch.softmax(torch.randn(14, len(OPS)), dim=-1)
    cell = derive_cell(w, OPS, 4)
    for i, edges in enumerate(cell.nodes):
        assert len(edges) == 2
        assert len({j for _, j in edges}) == 2
        for op, j in edges:
            assert op not in ZERO_OPS
            assert 0 <= j < i + 2


def test_derive_cell_only_none_raises() -> None:
    with pytest.raises(ConfigError):
        derive_cell(torch.ones(5, 1), ["none"], 2)


def test_space_derive_uses_both_cell_types() -> None:
    space = DartsSpace(nodes=4)
    normal = _hand_weights()
    reduce = torch.zeros_like(normal)
    reduce[:, _idx("skip_connect")] = torch.linspace(0.1, 1.0, 14)
    g = space.derive({"normal": normal, "reduce": reduce})
    assert g.normal == derive_cell(normal, OPS, 4)
    # later edges weigh more: every reduce node keeps its last two inputs
    assert g.reduce.nodes == tuple(
        (("skip_connect", i), ("skip_connect", i + 1)) for i in range(4)
    )


# ----------------------------------------------------------------------------- JSON


def _genotype() -> Genotype:
    return Genotype(derive_cell(_hand_weights(), OPS, 4),
                    CellGenotype.from_list([[["skip_connect", 0], ["sep_conv_3x3", 1]],
                                            [["dil_conv_5x5", 2], ["max_pool_3x3", 0]]]))


def test_genotype_dict_round_trip() -> None:
    g = _genotype()
    d = g.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert Genotype.from_dict(d) == g
    assert d["normal"][0] == [["sep_conv_3x3", 0], ["max_pool_3x3", 1]]


def test_genotype_save_load(tmp_path: Path) -> None:
    g = _genotype()
    path = tmp_path / "g.json"
    g.save(path)
    assert Genotype.load(path) == g
    assert Genotype.load(str(path)) == g


def test_genotype_load_run_file_wrapper(tmp_path: Path) -> None:
    g = _genotype()
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps({"genotype": g.to_dict(), "strategy": "darts", "seed": 3}))
    assert Genotype.load(path) == g


def test_genotype_counts_and_str() -> None:
    g = _genotype()
    assert g.normal.count() == 1  # one skip_connect
    assert g.reduce.count() == 1
    assert g.normal.n_nodes == 4
    assert "sep_conv_3x3(0)" in str(g)


@pytest.mark.parametrize("content, match", [
    ({"normal": [[["skip_connect", 0], ["skip_connect", 1]]]}, "reduce"),
    ({"reduce": []}, "normal"),
    ({"genotype": {"normal": []}}, "reduce"),
])
def test_genotype_missing_keys(tmp_path: Path, content: dict, match: str) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=match):
        Genotype.load(path)
    inner = content.get("genotype", content)
    with pytest.raises(ConfigError):
        Genotype.from_dict(inner)


def test_genotype_input_out_of_range() -> None:
    bad = {"normal": [[["skip_connect", 0], ["skip_connect", 2]]],  # node 0 sees only 0, 1
           "reduce": [[["skip_connect", 0], ["skip_connect", 1]]]}
    with pytest.raises(ConfigError, match="input 2"):
        Genotype.from_dict(bad)
    with pytest.raises(ConfigError):
        Genotype.from_dict({"normal": [[["skip_connect", -1]]], "reduce": []})


def test_genotype_malformed_edges() -> None:
    with pytest.raises(ConfigError):
        Genotype.from_dict({"normal": [[["skip_connect"]]], "reduce": []})
    with pytest.raises(ConfigError):
        Genotype.from_dict({"normal": [[["skip_connect", "first"]]], "reduce": []})


def test_genotype_load_not_json(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("normal: [sep_conv_3x3]\n")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Genotype.load(path)


def test_genotype_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Genotype.load(tmp_path / "nope.json")
    with pytest.raises(ConfigError):
        Genotype.load(tmp_path)  # a folder is not a genotype file


def test_genotype_load_json_list_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError):
        Genotype.load(path)


@pytest.mark.parametrize("text", ["42", "null"])
def test_genotype_load_json_scalar_is_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(ConfigError):
        Genotype.load(path)


# ----------------------------------------------------------------------------- space


def _assert_valid(g: Genotype, space: DartsSpace) -> None:
    for cell in (g.normal, g.reduce):
        assert cell.n_nodes == space.nodes
        for i, edges in enumerate(cell.nodes):
            inputs = [j for _, j in edges]
            assert len(inputs) == 2
            assert len(set(inputs)) == 2
            assert all(0 <= j < i + 2 for j in inputs)
            for op, _ in edges:
                assert op in space.ops
                assert op not in ZERO_OPS


def test_random_genotype_valid_and_reproducible() -> None:
    space = DartsSpace(nodes=4)
    genotypes = [space.random_genotype(random.Random(s)) for s in range(20)]
    for g in genotypes:
        _assert_valid(g, space)
        Genotype.from_dict(g.to_dict())  # passes validation
    assert space.random_genotype(random.Random(7)) == space.random_genotype(random.Random(7))
    assert len({json.dumps(g.to_dict()) for g in genotypes}) > 10


def test_random_genotype_restricted_ops() -> None:
    space = DartsSpace(ops=("none", "skip_connect", "avg_pool_3x3"), nodes=3)
    rng = random.Random(0)
    seen = set()
    for _ in range(30):
        g = space.random_genotype(rng)
        _assert_valid(g, space)
        seen.update(g.normal.ops() + g.reduce.ops())
    assert seen == {"skip_connect", "avg_pool_3x3"}


def test_space_rejects_unknown_op() -> None:
    with pytest.raises(ConfigError, match="unknown op"):
        DartsSpace(ops=("skip_connect", "conv_99x99"))


def test_space_rejects_duplicate_ops() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        DartsSpace(ops=("skip_connect", "sep_conv_3x3", "skip_connect"))


def test_space_rejects_only_none() -> None:
    with pytest.raises(ConfigError):
        DartsSpace(ops=("none",))


def test_space_rejects_zero_nodes() -> None:
    with pytest.raises(ConfigError):
        DartsSpace(nodes=0)


def test_space_n_edges_and_dict() -> None:
    space = DartsSpace(ops=["skip_connect", "none"], nodes=3)
    assert space.n_edges == 9
    assert space.ops == ("skip_connect", "none")
    assert space.to_dict() == {"ops": ["skip_connect", "none"], "nodes": 3,
                               "stem_multiplier": 3}
