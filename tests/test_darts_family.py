"""The DARTS family: PC-DARTS, P-DARTS, DARTS-, GDAS, ENAS, SPOS, early stopping against
collapse, flexible cell stacking, the resblock space, and each strategy through the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autonas.data import from_arrays
from autonas.errors import ConfigError
from autonas.run import RunDir, detach_log
from autonas.spaces import BuildSpec, make_space
from autonas.spaces.darts import (
    DartsSpace,
    MixedOp,
    Network,
    NetworkConfig,
    SearchCell,
)
from autonas.spaces.genotype import CellGenotype, Genotype, edge_inputs
from autonas.spaces.ops import DARTS_OPS, SKIP_OPS, ZERO_OPS
from autonas.spaces.pc_darts import PartialChannelEdge, channel_shuffle
from autonas.spaces.resblock import RESBLOCK_OPS, ResBlockSpace
from autonas.strategies import SearchContext, make_strategy
from autonas.strategies.collapse import collapse_stop
from autonas.strategies.darts import Darts
from autonas.strategies.enas import Controller
from autonas.strategies.p_darts import SkipDropout, cap_skips
from autonas.strategies.single_path import edge_index, genotype_path, random_genotype
from autonas.strategies.spos import crossover, mutate
from autonas.strategies.stacking import sample_cell
from autonas.training.budget import Deadline
from test_pipeline_cli import TINY, invoke, ok, read_jsonl, write_npz

CPU = torch.device("cpu")
SPACE = DartsSpace(nodes=2)
SKIP = DARTS_OPS.index("skip_connect")
SEP3 = DARTS_OPS.index("sep_conv_3x3")


def strategy(name: str, space: DartsSpace = SPACE, in_channels: int = 1, size: int = 12,
             **options):
    """A strategy with its supernet built (no data needed)."""
    torch.manual_seed(0)
    opts = {"channels": 4, "layers": 2, "batch_size": 8, **options}
    s = make_strategy(name, space, **opts)
    s.setup_model(space, in_channels, 2, size, CPU)
    return s


def batch(n: int = 8, size: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g).contiguous(memory_format=torch.channels_last)
    return x, torch.arange(n) % 2


def reference_mixed(mixed: MixedOp, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[k] * op_k(x) over the MixedOp's own modules (zero ops add zeros)."""
    out = 0
    for k, name in enumerate(mixed.op_names):
        if name in ZERO_OPS:
            continue
        out = out + w[k] * mixed.ops[str(k)](x)
    return out


# ----------------------------------------------------------------------------- PC-DARTS


def test_channel_shuffle_known_answer() -> None:
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("stride", [1, 2])
def test_pc_edge_sends_c_over_k_channels_through_the_ops(stride: int) -> None:
    torch.manual_seed(0)
    edge = PartialChannelEdge(DARTS_OPS, 8, stride, k=4).double()
    seen: list[int] = []
    for op in edge.mixed.ops.values():
        op.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[1]))
    x = torch.randn(3, 8, 7, 7, dtype=torch.float64)
    alpha = torch.randn(len(DARTS_OPS), dtype=torch.float64)
    beta = 0.3
    w = beta * torch.softmax(alpha, 0)
    out = edge(x, w)
    assert seen and set(seen) == {2}  # every op sees exactly C/K channels
    side = -(-7 // stride)
    assert out.shape == (3, 8, side, side)  # the edge keeps C
    rest = x[:, 2:] if stride == 1 else torch.nn.functional.max_pool2d(x[:, 2:], 3, 2, 1)
    want = channel_shuffle(torch.cat([reference_mixed(edge.mixed, x[:, :2], w), beta * rest],
                                     1), 4)
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)


def test_pc_edge_rejects_channels_not_divisible_by_k() -> None:
    with pytest.raises(ConfigError, match="multiple of k"):
        PartialChannelEdge(DARTS_OPS, 6, 1, k=4)


def test_pc_darts_edge_normalisation_enters_the_genotype() -> None:
    s = strategy("pc-darts")
    with torch.no_grad():
        for t in ("normal", "reduce"):
            s.arch.alphas[t].zero_()
            s.arch.betas[t].zero_()
        # node 0 (edges 0, 1) has both inputs anyway; node 1 reads edges 2, 3, 4
        s.arch.alphas["normal"][2, SEP3] = 5.0  # edge (1, 0): the strongest op of the cell...
        s.arch.betas["normal"][2] = -8.0  # ...on an edge that normalisation turns down
        s.arch.betas["normal"][3] = 1.0
    weights = s.derive_weights(s.arch)["normal"]
    ew = s.arch.edge_weights()["normal"]
    torch.testing.assert_close(ew[:2].sum(), torch.tensor(1.0))
    torch.testing.assert_close(ew[2:5].sum(), torch.tensor(1.0))
    torch.testing.assert_close(weights.sum(1), ew)  # rows: the edge weights
    genotype = s.derive_genotype()
    assert [j for _, j in genotype.normal.nodes[1]] == [1, 2]  # edge from state 0 dropped
    assert s.space.derive(s.arch.softmax()).normal.nodes[1][0] == ("sep_conv_3x3", 0)


def test_pc_darts_runs_and_has_a_larger_default_batch() -> None:
    assert make_strategy("pc-darts").batch_size > make_strategy("darts").batch_size
    s = strategy("pc-darts", channels=8)
    assert all(isinstance(e, PartialChannelEdge) for c in s.net.cells for e in c.edges)
    x, y = batch()
    s.arch_step(x, y, x, y)
    s.weight_step(x, y)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in s.arch.parameters())


# ----------------------------------------------------------------------------- P-DARTS


def test_p_darts_drops_ops_and_deepens_per_stage() -> None:
    s = strategy("p-darts", layers=3, epochs=6, stage_ops=[8, 5, 3])
    assert s.depths() == [1, 2, 3]
    assert s.stage_epochs() == [(0, 2), (2, 2), (4, 2)]
    assert len(s.net.cells) == 1 and s.net.n_ops == 8
    ramp = torch.arange(8.0)  # op k is the k-th weakest
    with torch.no_grad():
        for a in s.arch.alphas.values():
            a.copy_(ramp.expand_as(a))
    s.begin_epoch(1)
    assert s.stage == 0
    s.begin_epoch(2)
    assert s.stage == 1 and len(s.net.cells) == 2
    for t in ("normal", "reduce"):
        assert all(ops == list(DARTS_OPS[3:]) for ops in s.net.edge_ops[t])  # 5 strongest
    with torch.no_grad():
        for a in s.arch.alphas.values():
            a.copy_(-torch.arange(5.0).expand_as(a))  # now the first kept ops are strongest
    s.begin_epoch(4)
    assert s.stage == 2 and len(s.net.cells) == 3
    for t in ("normal", "reduce"):
        assert all(ops == list(DARTS_OPS[3:6]) for ops in s.net.edge_ops[t])
    assert s.arch.alphas["normal"].shape == (SPACE.n_edges, 3)
    full = s.derive_weights(s.arch)["normal"]
    assert full.shape == (SPACE.n_edges, 8) and torch.all(full[:, :3] == 0)


def test_p_darts_skip_dropout_decays_within_a_stage() -> None:
    s = strategy("p-darts", layers=2, epochs=6, stage_ops=[8, 4], skip_dropout=[0.3, 0.6])
    rates = []
    for epoch in range(6):
        s.begin_epoch(epoch)
        drops = [m for m in s.net.modules() if isinstance(m, SkipDropout)]
        assert drops and all(m.p == s.skip_rate for m in drops)
        rates.append(s.skip_rate)
    assert rates == pytest.approx([0.2, 0.1, 0.0, 0.4, 0.2, 0.0])
    drop = SkipDropout().train()
    drop.p = 0.5
    assert (drop(torch.ones(1000)) == 0).any()  # really drops


def test_skip_cap_holds_in_the_final_genotype() -> None:
    nodes = 4
    n_edges = len(edge_inputs(nodes))
    w = torch.full((n_edges, 8), 0.01)
    w[:, SKIP] = torch.linspace(0.9, 0.5, n_edges)  # skip wins every edge
    w[:, SEP3] = 0.2
    uncapped = DartsSpace().derive({"normal": w, "reduce": w}).normal
    assert uncapped.count(SKIP_OPS) == 8
    capped = cap_skips(w, DARTS_OPS, nodes, cap=2)
    assert capped.count(SKIP_OPS) == 2
    assert capped.ops().count("sep_conv_3x3") == 6  # the next best op took over
    # the two skips kept are the strongest of the chosen ones
    strongest = sorted((float(w[edge_index(n, j), SKIP]), n, j)
                       for n, edges in enumerate(uncapped.nodes) for _, j in edges)[-2:]
    kept = {(n, j) for n, edges in enumerate(capped.nodes) for op, j in edges if op in SKIP_OPS}
    assert kept == {(n, j) for _, n, j in strongest}


def test_p_darts_final_genotype_respects_the_cap() -> None:
    s = strategy("p-darts", skip_cap=1)
    with torch.no_grad():
        s.arch.alphas["normal"].zero_()
        s.arch.alphas["normal"][:, SKIP] = 4.0
    assert s.space.derive(s.derive_weights(s.arch)).normal.count(SKIP_OPS) == 4
    assert s.derive_genotype().normal.count(SKIP_OPS) == 1


# ----------------------------------------------------------------------------- DARTS-


def test_darts_minus_auxiliary_weight_decays_to_zero() -> None:
    s = strategy("darts-minus", epochs=5, aux_beta=1.0)
    betas = []
    for epoch in range(5):
        s.begin_epoch(epoch)
        betas.append(s.beta)
    assert betas == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert betas[-1] == 0.0  # gone at the last epoch


def test_darts_minus_auxiliary_skip_is_outside_softmax_and_genotype() -> None:
    s = strategy("darts-minus", epochs=3)
    assert s.net.n_ops == len(DARTS_OPS) + 1
    assert s.net.edge_ops["normal"][0][-1] == "skip_connect"
    assert s.arch.alphas["normal"].shape == (SPACE.n_edges, len(DARTS_OPS))
    s.begin_epoch(1)
    w = s.arch_weights(s.arch, training=True)["normal"]
    torch.testing.assert_close(w[:, :-1].sum(1), torch.ones(SPACE.n_edges))
    assert torch.all(w[:, -1] == 0.5)
    assert s.derive_weights(s.arch)["normal"].shape == (SPACE.n_edges, len(DARTS_OPS))
    Genotype.from_dict(s.derive_arch())
    # the auxiliary path is real: it changes the supernet's output until beta is 0
    x, _ = batch()
    s.net.eval()
    with torch.no_grad():
        with_aux = s.net(x, s.arch_weights(s.arch, False))
        s.begin_epoch(2)
        without = s.net(x, s.arch_weights(s.arch, False))
        plain = s.net(x, {t: torch.cat([v, torch.zeros(len(v), 1)], 1)
                          for t, v in s.arch.softmax().items()})
    assert not torch.allclose(with_aux, without)
    torch.testing.assert_close(without, plain)


# ----------------------------------------------------------------------------- early stop


def _record(epoch: int, skips: int, normal: list, frozen: bool = False) -> dict:
    return {"epoch": epoch, "skip_normal": skips, "genotype": {"normal": normal, "reduce": []},
            "alphas_frozen": frozen}


def test_collapse_rules_on_constructed_history() -> None:
    a, b = [[["sep_conv_3x3", 0]]], [[["skip_connect", 0]]]
    history = [_record(0, 5, a, frozen=True), _record(1, 1, a), _record(2, 2, b)]
    assert collapse_stop(history[:1], 2, None) is None  # warm-up epochs never count
    assert collapse_stop(history, 2, None) is None
    history.append(_record(3, 3, b))
    reason = collapse_stop(history, 2, None)
    assert reason is not None and reason.startswith("max_skips") and "3 skip" in reason
    assert collapse_stop(history, None, 3) is None  # b for 2 epochs only
    history.append(_record(4, 3, b))
    reason = collapse_stop(history, None, 3)
    assert reason is not None and reason.startswith("stable_epochs")
    assert collapse_stop(history, None, None) is None


def test_stopping_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="stable_epochs"):
        strategy("darts", stable_epochs=1)
    with pytest.raises(ConfigError, match="max_skips"):
        strategy("darts", max_skips=-1)


class ScriptedDarts(Darts):
    """DARTS whose alphas follow a script per epoch (a constructed alpha history)."""

    script: list = None  # type: ignore[assignment]

    def begin_epoch(self, epoch: int) -> None:
        with torch.no_grad():
            for a in self.arch.alphas.values():
                a.zero_()
                a[:, self.script[epoch]] = 5.0

    def arch_step(self, xt, yt, xv, yv) -> None:
        pass


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(48, 12, 12), dtype=np.uint8)
    y = np.arange(48) % 2
    return from_arrays((x[:32], y[:32]), (x[32:40], y[32:40]), (x[40:], y[40:]))


@pytest.mark.parametrize("rule, script, epochs", [
    ("max_skips", [SEP3, SEP3, SKIP, SKIP, SKIP], 3),
    ("stable_epochs", [SKIP, SEP3, SEP3, SEP3, SKIP], 4),
])
def test_early_stop_fires_in_the_search_and_the_log_says_which_rule(
        tmp_path: Path, rule: str, script: list, epochs: int) -> None:
    options = {"max_skips": 1} if rule == "max_skips" else {"stable_epochs": 3}
    s = ScriptedDarts(epochs=5, channels=4, layers=2, batch_size=16, warmup_epochs=0,
                      augment=False, **options)
    s.script = script
    run = RunDir.create(tmp_path / "run", "t")
    handler = run.attach_log()
    try:
        result = s.search(SearchContext(data=_tiny_data(), space=SPACE, run=run,
                                        deadline=Deadline(None), device=CPU))
    finally:
        detach_log(handler)
    assert result.stopped.startswith(f"early-stop: {rule}")
    assert result.epochs == epochs
    assert f"search stopped early: {rule}" in run.file("run.log").read_text()


# ----------------------------------------------------------------------------- GDAS


def test_gdas_temperature_follows_its_schedule() -> None:
    s = strategy("gdas", epochs=5, tau_max=10.0, tau_min=0.1)
    taus = []
    for epoch in range(5):
        s.begin_epoch(epoch)
        taus.append(s.tau)
    assert taus == pytest.approx([10.0, 7.525, 5.05, 2.575, 0.1])


def test_gdas_runs_one_op_per_edge_forward_and_backward() -> None:
    s = strategy("gdas")
    ran: dict[int, set[int]] = {}  # edge -> ops any of whose layers ran
    edges = [e for cell in s.net.cells for e in cell.edges]
    for i, edge in enumerate(edges):
        for k, op in edge.ops.items():
            for m in op.modules():
                if not list(m.children()):
                    m.register_forward_hook(lambda m, inp, out, i=i, k=int(k):
                                            ran.setdefault(i, set()).add(k))
    x, y = batch()
    torch.manual_seed(1)
    weights, active = s.train_path()
    sampled = [k for cell in s.net.cells
               for (k,) in active["reduce" if cell.reduction else "normal"]]
    s.net.zero_grad(set_to_none=True)
    s.loss_fn(s.net(x, weights, active), y).backward()
    assert all(len(ops) == 1 for ops in ran.values())  # never more than one op per edge
    assert {i: ops for i, ops in ran.items()} == {
        i: {k} for i, k in enumerate(sampled) if SPACE.ops[k] not in ZERO_OPS}
    for edge, k in zip(edges, sampled):
        for j, op in edge.ops.items():
            grads = [p.grad for p in op.parameters()]
            if int(j) != k:  # ops off the path take no part in the backward pass
                assert all(g is None for g in grads)
    # the straight-through weights carry the gradient to the alphas
    s.arch_step(x, y, x, y)
    assert all(a.grad.abs().sum() > 0 for a in s.arch.alphas.values())


# ----------------------------------------------------------------------------- ENAS, SPOS


def _valid(genotype: Genotype, space: DartsSpace = SPACE) -> None:
    space.validate(genotype.to_dict())
    for cell in (genotype.normal, genotype.reduce):
        assert cell.n_nodes == space.nodes
        for i, edges in enumerate(cell.nodes):
            inputs = [j for _, j in edges]
            assert len(inputs) == 2 and len(set(inputs)) == 2
            assert all(0 <= j < i + 2 for j in inputs)
            assert all(op not in ZERO_OPS for op, _ in edges)


def test_enas_and_spos_sample_valid_paths() -> None:
    space = DartsSpace(nodes=4)
    real = [op for op in space.ops if op not in ZERO_OPS]
    ctrl = Controller(space.nodes, real)
    gen = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    seen = set()
    for _ in range(30):
        genotype, log_prob, entropy = ctrl.sample(gen)
        _valid(genotype, space)
        assert log_prob.item() < 0 and entropy.item() > 0
        seen.add(str(genotype))
        path = random_genotype(space, gen)
        _valid(path, space)
        _valid(mutate(path, space, rng, 0.5), space)
        _valid(crossover(path, genotype, rng), space)
    assert len(seen) > 20  # the untrained controller explores


def _two_paths() -> tuple[Genotype, Genotype]:
    """Two paths that share sep_conv_3x3 on edge (node 0, input 0) and differ elsewhere."""
    a = Genotype(CellGenotype(((("sep_conv_3x3", 0), ("dil_conv_3x3", 1)),
                               (("sep_conv_5x5", 0), ("max_pool_3x3", 2)))),
                 CellGenotype(((("sep_conv_3x3", 0), ("sep_conv_3x3", 1)),
                               (("sep_conv_3x3", 0), ("sep_conv_3x3", 2)))))
    b = Genotype(CellGenotype(((("sep_conv_3x3", 0), ("skip_connect", 1)),
                               (("dil_conv_5x5", 1), ("avg_pool_3x3", 2)))),
                 a.reduce)
    return a, b


@pytest.mark.parametrize("name", ["spos", "enas"])
def test_paths_share_the_supernet_weights(name: str, monkeypatch) -> None:
    s = strategy(name)
    a, b = _two_paths()
    cell = s.net.cells[0]
    assert not cell.reduction
    shared = cell.edges[edge_index(0, 0)].ops[str(SEP3)][1].weight  # depthwise conv
    only_a = cell.edges[edge_index(0, 1)].ops[str(DARTS_OPS.index("dil_conv_3x3"))][1].weight
    x, y = batch()
    snapshots = [(shared.clone(), only_a.clone())]
    for genotype in (a, b):
        monkeypatch.setattr(s, "train_path", lambda g=genotype: s.genotype_forward(g))
        s.weight_step(x, y)
        snapshots.append((shared.clone(), only_a.clone()))
    assert cell.edges[edge_index(0, 0)].ops[str(SEP3)][1].weight is shared
    assert not torch.equal(snapshots[0][0], snapshots[1][0])  # path a updates it
    assert not torch.equal(snapshots[1][0], snapshots[2][0])  # path b updates the same tensor
    assert not torch.equal(snapshots[0][1], snapshots[1][1])
    assert torch.equal(snapshots[1][1], snapshots[2][1])  # an op off path b stays as it was


def test_genotype_path_marks_the_chosen_edges() -> None:
    a, _ = _two_paths()
    path = genotype_path(a, DARTS_OPS, SPACE.n_edges)
    assert path["normal"] == [SEP3, DARTS_OPS.index("dil_conv_3x3"),
                              DARTS_OPS.index("sep_conv_5x5"), None,
                              DARTS_OPS.index("max_pool_3x3")]


def test_enas_controller_learns_from_reward(monkeypatch) -> None:
    """REINFORCE with a reward that pays for sep_conv_3x3 as the first normal op: the
    controller's probability of that choice rises."""
    s = strategy("enas", alpha_lr=0.05, entropy_weight=0.0)
    x, y = batch()
    monkeypatch.setattr(s, "forward_path", lambda xb, path: torch.zeros(len(xb), 2))
    target = ("sep_conv_3x3", 0)

    def reward(logits, yb, objective) -> float:
        return float(target in s._last.normal.nodes[0])

    original = s.arch.sample

    def remember(*args, **kwargs):
        out = original(*args, **kwargs)
        s._last = out[0]
        return out

    monkeypatch.setattr(s.arch, "sample", remember)
    monkeypatch.setattr("autonas.strategies.enas.path_score", reward)

    def share() -> float:
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():
            return sum(target in original(gen)[0].normal.nodes[0] for _ in range(200)) / 200

    before = share()
    for _ in range(60):
        s.arch_step(x, y, x, y)
    assert int(s.arch.updates) == 60
    assert share() > before + 0.2


# ----------------------------------------------------------------------------- resblock


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("op", RESBLOCK_OPS)
def test_resblock_ops_shapes(op: str, stride: int) -> None:
    from autonas.spaces.ops import make_op

    x = torch.randn(2, 8, 7, 7)
    side = -(-7 // stride)
    for affine in (False, True):
        assert make_op(op, 8, stride, affine)(x).shape == (2, 8, side, side)


def test_resblock_space_is_registered_and_builds() -> None:
    space = make_space("resblock", nodes=2)
    assert isinstance(space, ResBlockSpace) and space.ops == RESBLOCK_OPS
    arch = space.sample(random.Random(0))
    net = space.build(space.validate(arch), BuildSpec(1, 3, 16, channels=4, layers=3))
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 3)


@pytest.mark.parametrize("reduction", [False, True])
def test_resblock_search_cell_matches_textbook(reduction: bool) -> None:
    torch.manual_seed(0)
    space = ResBlockSpace(nodes=3)
    cell = SearchCell([list(RESBLOCK_OPS)] * space.n_edges, space.nodes, 6, 6, 4,
                      reduction=reduction, reduction_prev=False).double()
    assert any(g is not None for g in cell._groups)  # the fused path is exercised
    s0 = torch.randn(4, 6, 9, 9, dtype=torch.float64, requires_grad=True)
    s1 = torch.randn(4, 6, 9, 9, dtype=torch.float64, requires_grad=True)
    alpha = torch.randn(space.n_edges, len(RESBLOCK_OPS), dtype=torch.float64,
                        requires_grad=True)

    def textbook() -> torch.Tensor:
        w = torch.softmax(alpha, -1)
        states = [cell.preprocess0(s0), cell.preprocess1(s1)]
        e = 0
        for _ in range(space.nodes):
            node = sum(reference_mixed(cell.edges[e + j], h, w[e + j])
                       for j, h in enumerate(states))
            e += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)

    out = cell(s0, s1, torch.softmax(alpha, -1))
    ref = textbook()
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    wrt = [alpha, s0, s1, *cell.parameters()]
    got = torch.autograd.grad(out, wrt, g, allow_unused=True, retain_graph=True)
    want = torch.autograd.grad(ref, wrt, g, allow_unused=True)
    for a, b in zip(got, want):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["darts", "pc-darts", "darts-minus", "gdas", "spos"])
def test_resblock_space_works_with_the_strategies(name: str) -> None:
    space = ResBlockSpace(nodes=2)
    s = strategy(name, space=space, channels=8)
    x, y = batch()
    s.arch_step(x, y, x, y)
    assert np.isfinite(s.weight_step(x, y))
    if name != "spos":  # SPOS derives by evolution on search data
        s.space.validate(s.derive_genotype().to_dict())


# ----------------------------------------------------------------------------- stacking


def test_sample_cell_follows_the_weights() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.full((SPACE.n_edges, 8), 1e-6)
    for node, j, k in ((0, 0, SEP3), (0, 1, SKIP), (1, 0, SEP3), (1, 2, 7)):
        w[edge_index(node, j), k] = 1.0
    cells = {str(sample_cell(w, DARTS_OPS, 2, gen).to_list()) for _ in range(20)}
    assert cells == {str([[["sep_conv_3x3", 0], ["skip_connect", 1]],
                          [["sep_conv_3x3", 0], ["dil_conv_5x5", 2]]])}
    uniform = torch.ones(SPACE.n_edges, 8)
    assert len({str(sample_cell(uniform, DARTS_OPS, 2, gen).to_list())
                for _ in range(20)}) > 10


def test_flexible_stacking_builds_per_position_cells() -> None:
    s = strategy("darts", flexible_stacking=True, stacking_layers=5)
    arch = s.derive_arch()
    assert len(arch["cells"]) == 5 and arch["normal"] and arch["reduce"]
    arch = SPACE.validate(arch)
    assert len(arch["cells"]) == 5
    assert len({json.dumps(c) for c in arch["cells"]}) > 1  # not one cell repeated
    net = SPACE.build(arch, BuildSpec(1, 2, 16, channels=4, layers=5))
    assert [c.genotype.to_list() for c in net.cells] == arch["cells"]
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 2)
    with pytest.raises(ConfigError, match=r"network\.layers=5"):
        Network(NetworkConfig(genotype=arch, in_channels=1, num_classes=2, image_size=16,
                              channels=4, layers=4, nodes=2))
    plain = strategy("darts").derive_arch()
    assert "cells" not in plain and "cells" not in SPACE.validate(plain)


# ----------------------------------------------------------------------------- supernet


@pytest.mark.parametrize("reduction", [False, True])
def test_pc_cell_fused_matches_edge_by_edge(reduction: bool) -> None:
    """The partial channel edges of a state, evaluated together (their mixed ops fused,
    one shared bypass), against each edge on its own: outputs and every gradient."""
    from functools import partial

    from autonas.spaces.pc_darts import PartialChannelGroup

    torch.manual_seed(0)
    space = DartsSpace(nodes=3)
    cell = SearchCell([list(DARTS_OPS)] * space.n_edges, space.nodes, 12, 12, 8,
                      reduction=reduction, reduction_prev=False,
                      edge_factory=partial(PartialChannelEdge, k=4)).double()
    assert all(isinstance(g, PartialChannelGroup) for g in cell._groups[:-1])
    s0 = torch.randn(4, 12, 9, 9, dtype=torch.float64, requires_grad=True)
    s1 = torch.randn(4, 12, 9, 9, dtype=torch.float64, requires_grad=True)
    alpha = torch.randn(space.n_edges, 8, dtype=torch.float64, requires_grad=True)
    beta = torch.rand(space.n_edges, 1, dtype=torch.float64)
    w = torch.softmax(alpha, -1) * beta
    outs = []
    for fuse in (True, False):
        cell.fuse = fuse
        outs.append(cell(s0, s1, w))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-10)
    g = torch.randn_like(outs[0])
    wrt = [alpha, s0, s1, *cell.parameters()]
    fused = torch.autograd.grad(outs[0], wrt, g, allow_unused=True, retain_graph=True)
    edgewise = torch.autograd.grad(outs[1], wrt, g, allow_unused=True)
    for a, b in zip(fused, edgewise):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


STRATEGY_SETS = {
    "pc-darts": [],
    "p-darts": ["--set", "search.stage_ops=[8,4]", "--set", "search.skip_dropout=[0.2,0.1]"],
    "darts-minus": [],
    "gdas": [],
    "enas": ["--set", "search.derive_samples=4"],
    "spos": ["--set", "search.population=4", "--set", "search.generations=1"],
}


def _interrupt_after_first_checkpoint(monkeypatch) -> None:
    """Ctrl-C right after the search saves its first checkpoint."""
    original = RunDir.save_state

    def save_state(self, name, state):
        original(self, name, state)
        if name == "search/state.pt":
            monkeypatch.setattr(RunDir, "save_state", original)
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_state", save_state)


@pytest.mark.parametrize("name", list(STRATEGY_SETS))
def test_strategy_through_the_cli_and_resume(name: str, npz: Path, tmp_path: Path,
                                              monkeypatch) -> None:
    out = tmp_path / "run"
    args = ["search", "--data", npz, *TINY, "--strategy", name, *STRATEGY_SETS[name],
            "--set", "search.warmup_epochs=0", "--epochs", 2, "--seed", 1, "--device", "cpu"]
    if name == "gdas":
        args += ["--loss", "focal", "--class-weights", "auto"]
    _interrupt_after_first_checkpoint(monkeypatch)
    result = invoke(*args, "--out", out)
    assert result.exit_code == 130, result.output
    assert len(read_jsonl(out / "search" / "history.jsonl")) == 1
    ok("search", "--resume", out)
    history = read_jsonl(out / "search" / "history.jsonl")
    assert [r["epoch"] for r in history] == [0, 1]
    assert "resuming after epoch 1" in (out / "run.log").read_text()
    search = json.loads((out / "search" / "result.json").read_text())
    assert search["stopped"] == "completed" and search["epochs"] == 2
    genotype = Genotype.load(out / "genotype.json")
    _valid(genotype)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["strategy"] == name
    if name == "gdas":
        assert cfg["search"]["loss"] == "focal" and cfg["search"]["class_weights"] == "auto"
        assert cfg["train"]["loss"] == "focal" and cfg["train"]["class_weights"] == "auto"
        assert [r["tau"] for r in history] == pytest.approx([10.0, 0.1])
    if name == "darts-minus":
        assert [r["aux_beta"] for r in history] == [1.0, 0.0]
    if name == "p-darts":
        assert [(r["stage"], r["ops_per_edge"]) for r in history] == [(1, 8), (2, 4)]
        assert "stage 2/2" in (out / "run.log").read_text()
    if name in ("enas", "spos"):
        paths = json.loads((out / "search" / "paths.json").read_text())
        assert paths and paths[0]["genotype"] == genotype.to_dict()


def test_p_darts_resume_across_stages_repeats_the_search(npz: Path, tmp_path: Path,
                                                        monkeypatch) -> None:
    args = ["search", "--data", npz, *TINY, "--strategy", "p-darts",
            *STRATEGY_SETS["p-darts"], "--set", "search.warmup_epochs=0", "--epochs", 2,
            "--seed", 2, "--device", "cpu"]
    ok(*args, "--out", tmp_path / "reference")
    _interrupt_after_first_checkpoint(monkeypatch)
    assert invoke(*args, "--out", tmp_path / "resumed").exit_code == 130
    ok("search", "--resume", tmp_path / "resumed")
    for f in ("search/alphas.jsonl", "genotype.json"):
        assert (tmp_path / "resumed" / f).read_text() == (tmp_path / "reference" / f).read_text()


def test_run_with_flexible_stacking_and_focal_loss(npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # no stacking_layers: the search draws as many cells as the retrained network has
    ok("run", "--data", npz, *TINY, "--set", "search.flexible_stacking=true",
       "--set", "search.warmup_epochs=0", "--loss", "focal", "--class-weights", "auto",
       "--epochs", 1, "--retrain-epochs", 1, "--device", "cpu", "--out", out)
    model = json.loads((out / "model.json").read_text())
    assert len(model["arch"]["cells"]) == model["build"]["layers"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["train"]["loss"] == "focal" and cfg["search"]["class_weights"] == "auto"
