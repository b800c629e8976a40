"""GDAS, ENAS, SPOS / random one-shot and ProxylessNAS on user model spaces: single paths
compute only their values, each strategy runs end to end and finds the one candidate
that sees the image, and the ProxylessNAS estimator matches its formula."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from autonas.run import RunDir
from autonas.spaces.model_space import (
    InputChoice,
    LayerChoice,
    ModelSpace,
    MutableConv2d,
    MutableLinear,
    choice,
)
from autonas.strategies import SearchContext, make_strategy
from autonas.strategies.enas_model import ModelSpaceEnas
from autonas.strategies.gdas_model import ModelSpaceGdas
from autonas.strategies.model_oneshot import (
    ModelSpaceOneShot,
    arch_path,
    gumbel_hard,
    path_arch,
    path_forward,
    uniform_path,
)
from autonas.strategies.model_supernet import ModelSupernet
from autonas.strategies.proxyless import CellProxyless, Proxyless, proxyless_alpha_grad
from autonas.strategies.spos_model import ModelSpaceSpos
from autonas.training.budget import Deadline
from test_model_space_darts import OneSolvableSpace, squares  # noqa: F401 (fixture)
from test_mutables import ConcatSpace, DerivedSpace, all_archs

CPU = torch.device("cpu")
SINGLE_PATH = {"gdas": ModelSpaceGdas, "enas": ModelSpaceEnas, "spos": ModelSpaceSpos,
               "random-oneshot": ModelSpaceSpos, "proxyless": Proxyless}


class Counting(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * self.scale


class PathSpace(ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.op = LayerChoice([Counting(1.0), Counting(2.0), Counting(3.0)], label="op")
        self.pick = InputChoice(3, n_chosen=2, reduction="mean", label="pick")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.op(x)
        return self.pick([x, a, 2 * a])


def test_single_path_computes_only_its_values_and_equals_the_frozen_model() -> None:
    space = PathSpace()
    net = ModelSupernet(space, soft=False)
    x = torch.randn(2, 3)
    for arch in all_archs(space):
        path = arch_path(net.relaxed, arch)
        assert path_arch(net.decisions, path) == arch
        counts = [c.calls for c in net.body.op.candidates]
        got = net(x, *path_forward(net.relaxed, path, CPU))
        ran = [c.calls - n for c, n in zip(net.body.op.candidates, counts)]
        assert ran == [int(i == path["op"][0]) for i in range(3)]
        torch.testing.assert_close(got, space.freeze(arch)(x))
    with pytest.raises(RuntimeError, match="single paths"):
        net(x, {"op": torch.ones(3), "pick": torch.ones(3)})


def test_single_paths_of_derived_and_concat_spaces_equal_frozen_models() -> None:
    torch.manual_seed(0)
    for space, x in ((DerivedSpace(), torch.randn(2, 1, 7, 7)),
                     (ConcatSpace(), torch.randn(2, 1, 5, 5))):
        net = ModelSupernet(space, soft=False)
        for arch in all_archs(space):
            forward = path_forward(net.relaxed, arch_path(net.relaxed, arch), CPU)
            torch.testing.assert_close(net(x, *forward), space.freeze(arch).train()(x))


def test_gumbel_hard_draws_n_chosen_with_straight_through_gradients() -> None:
    torch.manual_seed(0)
    alpha = torch.tensor([0.1, 2.0, -1.0, 0.5], requires_grad=True)
    w, picked = gumbel_hard(alpha, 2, tau=1.0)
    assert len(picked) == 2 and w.detach().sum() == pytest.approx(2.0)
    assert sorted(torch.nonzero(w.detach() > 0.5).flatten().tolist()) == picked
    (w * torch.arange(4.0)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_proxyless_estimator_is_the_binary_gate_formula() -> None:
    probs = torch.softmax(torch.tensor([0.3, -0.2, 1.0, 0.0]), 0)
    gate_grad = torch.tensor([0.5, -1.0, 2.0, 7.0])
    drawn = [0, 2]
    got = proxyless_alpha_grad(gate_grad, probs, drawn)
    p = probs[drawn] / probs[drawn].sum()
    want = torch.zeros(4)
    for a, i in enumerate(drawn):
        want[i] = sum(gate_grad[j] * p[b] * (float(a == b) - p[a]) for b, j in enumerate(drawn))
    torch.testing.assert_close(got, want)
    assert got[1] == 0 and got[3] == 0  # values not drawn get no gradient
    assert float(got.sum()) == pytest.approx(0.0, abs=1e-6)  # softmax gradients sum to 0


def test_uniform_path_respects_n_chosen() -> None:
    net = ModelSupernet(PathSpace(), soft=False)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        path = uniform_path(net.relaxed, gen)
        assert len(path["op"]) == 1 and len(set(path["pick"])) == 2


# ----------------------------------------------------------------------------- search


def search(name: str, space: ModelSpace, data, tmp_path: Path, seed: int = 0, **options):
    strategy = make_strategy(name, space, **options)
    run = RunDir.create(tmp_path / name, name=name)
    ctx = SearchContext(data=data, space=space, run=run, deadline=Deadline(None), device=CPU,
                        seed=seed)
    return strategy, run, strategy.search(ctx)


FAST = dict(batch_size=8, augment=False, w_lr=0.05)
OPTIONS = {
    "gdas": dict(epochs=8, warmup_epochs=1, alpha_lr=0.1, tau_max=2.0, tau_min=0.5),
    "proxyless": dict(epochs=8, warmup_epochs=1, alpha_lr=0.1),
    "enas": dict(epochs=4, warmup_epochs=1, derive_samples=8, objective="accuracy"),
    "spos": dict(epochs=8, derive_samples=8, objective="accuracy"),
    "random-oneshot": dict(epochs=4, derive_samples=8),
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_strategy_finds_the_only_candidate_that_sees_the_image(name, squares, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    space = OneSolvableSpace()
    strategy, run, result = search(name, space, squares, tmp_path, **FAST, **OPTIONS[name])
    assert isinstance(strategy, SINGLE_PATH[name]) and isinstance(strategy, ModelSpaceOneShot)
    assert space.validate(result.architecture) == result.architecture
    assert result.architecture == {"features": 2}
    history = [json.loads(line) for line in
               run.file("search/history.jsonl").read_text().splitlines()]
    assert len(history) == OPTIONS[name]["epochs"] == result.epochs
    assert result.extra["supernet"]["relaxed"] == ["features"]
    if name in ("gdas", "proxyless"):  # the learned alphas prefer the seeing candidate
        last = history[-1]["weights"]["features"]
        assert last[2] == max(last) and last[2] > 0.4
    if name in ("enas", "spos", "random-oneshot"):
        rows = json.loads(run.file("search/paths.json").read_text())
        assert rows[0]["arch"] == {"features": 2} and len(rows) <= 3  # duplicates scored once
        key = OPTIONS[name].get("objective", "auc")
        assert rows[0][key] > max(r[key] for r in rows[1:])


@pytest.mark.parametrize("name", ["gdas", "proxyless", "enas", "random-oneshot"])
def test_strategy_runs_on_a_space_with_every_mutable_kind(name, squares, tmp_path):  # noqa: F811
    class Mixed(ModelSpace):
        def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
            super().__init__()
            w = choice("w", [2, 4])
            k = choice("k", [1, 3])
            self.conv = MutableConv2d(in_channels, w, k, padding=k // 2)
            self.op = LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh()}, label="op")
            self.pick = InputChoice(2, n_chosen=1, reduction="concat", label="pick")
            self.fc = MutableLinear(w, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            h = self.pick([h, self.op(h)])
            return self.fc(h.mean((2, 3)))

    torch.manual_seed(0)
    space = Mixed()
    _, _, result = search(name, space, squares, tmp_path, epochs=2, warmup_epochs=0,
                          data_fraction=0.5, **FAST)
    arch = space.validate(result.architecture)
    assert set(arch) == {"w", "k", "op", "pick"}
    assert space.freeze(arch)(torch.zeros(2, 1, 16, 16)).shape == (2, 2)


def test_cell_space_names_keep_their_cell_implementations() -> None:
    from autonas.spaces import make_space
    from autonas.strategies.enas import Enas
    from autonas.strategies.gdas import Gdas
    from autonas.strategies.spos import Spos

    cells = make_space("darts")
    assert type(make_strategy("gdas", cells)) is Gdas
    assert type(make_strategy("enas", cells)) is Enas
    assert type(make_strategy("spos", cells)) is Spos
    assert type(make_strategy("proxyless", cells)) is CellProxyless
    assert type(make_strategy("proxyless", OneSolvableSpace())) is Proxyless


def test_proxyless_on_the_cell_space_moves_only_drawn_ops(tmp_path) -> None:
    from autonas.data import from_arrays
    from autonas.spaces.darts import DartsSpace
    from test_model_space_darts import square_split

    space = DartsSpace(nodes=2)
    torch.manual_seed(0)
    s = make_strategy("proxyless", space, channels=4, layers=2, batch_size=8)
    s.setup_model(space, 1, 2, 12, CPU)
    x = torch.randn(8, 1, 12, 12).contiguous(memory_format=torch.channels_last)
    y = torch.arange(8) % 2
    for alpha in s.arch.alphas.values():  # distinct logits make the shift visible
        alpha.data = torch.randn_like(alpha)
    before = {k: torch.softmax(a.detach(), -1) for k, a in s.arch.alphas.items()}
    torch.manual_seed(3)
    s.arch_step(x, y, x, y)
    moved = 0
    for kind, alpha in s.arch.alphas.items():
        after = torch.softmax(alpha.detach(), -1)
        changed = (after - before[kind]).abs() > 1e-7
        assert (changed.sum(-1) <= len(space.ops)).all()
        # the probabilities of each edge's undrawn ops are kept: the drawn pair keeps its mass
        for e in range(after.shape[0]):
            drawn = torch.nonzero(changed[e]).flatten()
            if len(drawn):
                assert len(drawn) == 2
                torch.testing.assert_close(after[e, drawn].sum(), before[kind][e, drawn].sum())
                moved += 1
    assert moved > 0
    assert torch.isfinite(torch.tensor(s.weight_step(x, y)))
    data = from_arrays(square_split(32, 0), square_split(16, 1), square_split(16, 2))
    run = RunDir.create(tmp_path / "cells", name="cells")
    result = s.search(SearchContext(data=data, space=space, run=run, deadline=Deadline(None),
                                    device=CPU))
    assert space.validate(result.architecture) == result.architecture


@pytest.mark.parametrize(("name", "cls"), [("proxyless", Proxyless), ("enas", ModelSpaceEnas)])
def test_resumed_search_matches_an_uninterrupted_one(name, cls, squares, tmp_path,  # noqa: F811
                                                     monkeypatch):
    options = {**FAST, "epochs": 4, "warmup_epochs": 1}
    torch.manual_seed(0)
    whole, _, full = search(name, OneSolvableSpace(), squares, tmp_path / "whole", **options)

    monkeypatch.setattr(cls, "extra_stop",
                        lambda self, history: "test stop" if len(history) == 2 else None)
    torch.manual_seed(0)
    strategy = make_strategy(name, OneSolvableSpace(), **options)
    run = RunDir.create(tmp_path / "cut", name="cut")
    ctx = SearchContext(data=squares, space=OneSolvableSpace(), run=run,
                        deadline=Deadline(None), device=CPU, seed=0)
    assert strategy.search(ctx).epochs == 2
    monkeypatch.undo()
    resumed = make_strategy(name, OneSolvableSpace(), **options)
    ctx.resume = True
    result = resumed.search(ctx)
    assert result.epochs == 4
    for a, b in zip(resumed.arch.parameters(), whole.arch.parameters()):
        torch.testing.assert_close(a, b)
    assert [r["weights"] for r in result.history] == [r["weights"] for r in full.history]
