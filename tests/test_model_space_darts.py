"""DARTS on model spaces: the relaxations, known-answer search, second order, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from autonas.cli import app
from autonas.data import from_arrays
from autonas.errors import ConfigError
from autonas.run import RunDir
from autonas.spaces import make_space
from autonas.spaces.model_space import (
    InputChoice,
    LayerChoice,
    ModelSpace,
    MutableConv2d,
    MutableLinear,
    Repeat,
    choice,
)
from autonas.strategies import SearchContext, make_strategy
from autonas.strategies.darts_model import (
    ModelArchParams,
    ModelSpaceDarts,
    ModelSupernet,
    derive_arch,
)
from autonas.training.budget import Deadline

CPU = torch.device("cpu")


def softmax(*logits: float) -> torch.Tensor:
    return torch.softmax(torch.tensor(logits, dtype=torch.float32), 0)


# ----------------------------------------------------------------------------- relaxations


class WidthSpace(ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.conv = MutableConv2d(3, choice("c", [2, 4, 6]), choice("k", [1, 3, 5]),
                                  padding="same")
        self.fc = MutableLinear(5, choice("w", [2, 3, 7]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def pad_to(y: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(y, (0, 0) * (y.dim() - 2) + (0, width - y.shape[1]))


def test_linear_width_mixture_equals_explicit_sum() -> None:
    torch.manual_seed(0)
    space = WidthSpace()
    net = ModelSupernet(space)
    fc = net.body.fc
    x = torch.randn(4, 5)
    p = softmax(0.3, -1.0, 0.8)
    net.slot.weights = {"w": p}
    got = fc(x)
    net.slot.weights = None
    explicit = sum(p[i] * pad_to(F.linear(x, space.fc.weight[:w], space.fc.bias[:w]), 7)
                   for i, w in enumerate([2, 3, 7]))
    torch.testing.assert_close(got, explicit)


def test_conv_width_and_kernel_mixture_equals_explicit_sum() -> None:
    torch.manual_seed(0)
    space = WidthSpace()
    net = ModelSupernet(space)
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    pc, pk = softmax(0.1, 0.5, -0.4), softmax(-0.2, 0.9, 0.0)
    weights = {"c": pc, "k": pk, "w": softmax(0, 0, 0)}
    got = net(x, weights)
    explicit = 0
    for i, c in enumerate([2, 4, 6]):
        for j, k in enumerate([1, 3, 5]):
            frozen = space.freeze({"c": c, "k": k, "w": 2})
            explicit = explicit + pc[i] * pk[j] * pad_to(frozen(x), 6)
    torch.testing.assert_close(got, explicit)


class GraphSpace(ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.ops = LayerChoice([nn.Identity(), nn.Tanh(), nn.Sigmoid()], label="op")
        self.stack = Repeat(lambda i: nn.Linear(3, 3), (0, 2), label="depth")
        self.pick = InputChoice(3, n_chosen=2, label="pick")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.ops(x)
        return self.pick([x, a, self.stack(a)])


def test_layer_input_and_repeat_relaxations_are_weighted_sums() -> None:
    torch.manual_seed(0)
    space = GraphSpace()
    net = ModelSupernet(space)
    x = torch.randn(4, 3)
    w = {"op": softmax(0.2, 0.1, -0.3), "depth": softmax(1.0, 0.0, 0.5),
         "pick": softmax(-1.0, 0.4, 0.2)}
    a = w["op"][0] * x + w["op"][1] * torch.tanh(x) + w["op"][2] * torch.sigmoid(x)
    h1 = space.stack.blocks[0](a)
    h2 = space.stack.blocks[1](h1)
    stacked = w["depth"][0] * a + w["depth"][1] * h1 + w["depth"][2] * h2
    explicit = w["pick"][0] * x + w["pick"][1] * a + w["pick"][2] * stacked
    torch.testing.assert_close(net(x, w), explicit)


def test_every_mutable_kind_relaxes_and_gets_gradients() -> None:
    from test_mutables import ToySpace

    torch.manual_seed(0)
    space = ToySpace()
    net = ModelSupernet(space)
    assert [d.label for d in net.relaxed] == space.labels()
    arch = ModelArchParams(net.relaxed)
    x = torch.randn(4, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    net(x, arch.softmax()).square().sum().backward()
    for label, alpha in zip(arch.labels, arch.alphas):
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0, label
    logits = {d.label: torch.arange(len(d.values), dtype=torch.float32) for d in net.relaxed}
    derived = derive_arch(net.decisions, logits)
    assert derived == {"width": 8, "kernel": 3, "act": "tanh", "op": "pool", "depth": 2,
                       "merge": [1, 2], "hidden": 12}
    assert space.validate(derived) == derived


# ----------------------------------------------------------------------------- search


def square_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16x16 uint8 images; class 1 has a bright square in the middle."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
    y = (np.arange(n) % 2).astype(np.int64)
    x[y == 1, 4:12, 4:12] = rng.integers(200, 256, size=(int((y == 1).sum()), 8, 8))
    return x, y


@pytest.fixture(scope="module")
def squares():
    return from_arrays(square_split(96, 0), square_split(24, 1), square_split(24, 2),
                       name="squares")


class Blind(nn.Module):
    """Sees nothing: zeros of the feature shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], 4, *x.shape[2:])


class Noise(nn.Module):
    """Sees only noise: a learnable conv applied to random input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(torch.randn_like(x)))


class OneSolvableSpace(ModelSpace):
    """Only candidate 2 sees the image, so only it can tell the classes apart."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.features = LayerChoice([
            Blind(),
            Noise(),
            nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU()),
        ], label="features")
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def search(space: ModelSpace, data, tmp_path: Path, name: str = "darts", seed: int = 0,
           **options):
    strategy = make_strategy(name, space, **options)
    assert isinstance(strategy, ModelSpaceDarts)
    run = RunDir.create(tmp_path / name, name=name)
    ctx = SearchContext(data=data, space=space, run=run, deadline=Deadline(None), device=CPU,
                        seed=seed)
    return strategy, run, strategy.search(ctx)


FAST = dict(batch_size=8, warmup_epochs=0, augment=False, alpha_lr=0.05, w_lr=0.05)


@pytest.mark.parametrize("seed", [0, 3])
def test_darts_exports_the_only_candidate_that_solves_the_task(squares, tmp_path,
                                                                seed: int) -> None:
    space = OneSolvableSpace()
    # One warm-up epoch: untrained, the seeing candidate is no better than the blind ones.
    options = {**FAST, "warmup_epochs": 1}
    _, run, result = search(space, squares, tmp_path, epochs=4, seed=seed, **options)
    assert result.architecture == {"features": 2}
    assert space.validate(result.architecture) == {"features": 2}
    history = [json.loads(line) for line in
               run.file("search/history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [0, 1, 2, 3]
    assert history[0]["alphas_frozen"] and not history[1]["alphas_frozen"]
    weights = [r["weights"]["features"] for r in history]
    assert weights[0] == pytest.approx([1 / 3] * 3, abs=1e-2)  # frozen during warm-up
    assert weights[-1][2] > 0.45 and weights[-1][2] > max(weights[-1][:2]) + 0.15
    assert history[-1]["entropy"]["features"] < history[0]["entropy"]["features"]
    assert history[-1]["arch"] == {"features": 2}
    alphas = [json.loads(line) for line in
              run.file("search/alphas.jsonl").read_text().splitlines()]
    assert len(alphas[-1]["features"]) == 3
    assert result.extra["supernet"]["relaxed"] == ["features"]


def test_stable_architecture_ends_the_search_early(squares, tmp_path) -> None:
    options = {**FAST, "warmup_epochs": 1, "epochs": 8, "stable_epochs": 2}
    _, _, result = search(OneSolvableSpace(), squares, tmp_path, **options)
    assert result.stopped.startswith("early-stop: stable_epochs")
    assert result.epochs < 8
    assert result.history[-1]["arch"] == result.history[-2]["arch"] == result.architecture
    with pytest.raises(ConfigError, match="max_skips"):
        search(OneSolvableSpace(), squares, tmp_path / "skips", max_skips=2, **FAST)


@pytest.mark.slow
def test_resumed_search_matches_an_uninterrupted_one(squares, tmp_path, monkeypatch) -> None:
    options = {**FAST, "warmup_epochs": 1, "epochs": 4}
    whole, _, full = search(OneSolvableSpace(), squares, tmp_path / "whole", **options)

    monkeypatch.setattr(ModelSpaceDarts, "extra_stop",
                        lambda self, history: "test stop" if len(history) == 2 else None)
    strategy = make_strategy("darts", OneSolvableSpace(), **options)
    run = RunDir.create(tmp_path / "cut", name="cut")
    ctx = SearchContext(data=squares, space=OneSolvableSpace(), run=run,
                        deadline=Deadline(None), device=CPU, seed=0)
    assert strategy.search(ctx).epochs == 2
    monkeypatch.undo()
    resumed = make_strategy("darts", OneSolvableSpace(), **options)
    ctx.resume = True
    result = resumed.search(ctx)
    assert result.epochs == 4
    torch.testing.assert_close(resumed.arch.alphas[0], whole.arch.alphas[0])
    assert [r["weights"] for r in result.history] == [r["weights"] for r in full.history]


def test_second_order_runs_and_exports_a_valid_arch(squares, tmp_path) -> None:
    torch.manual_seed(0)
    space = make_space("medmnist-cnn")
    strategy, _, result = search(space, squares, tmp_path, name="darts2", epochs=1,
                                 data_fraction=0.25, **FAST)
    assert strategy.order == 2
    assert set(result.architecture) == {"convolution_block", "feature"}
    space.validate(result.architecture)
    for alpha in strategy.arch.alphas:  # the unrolled step moved every alpha, finitely
        assert torch.isfinite(alpha).all() and alpha.abs().max() > 1e-2


def test_supernet_takes_channels_last_input_and_every_label() -> None:
    space = make_space("medmnist-cnn")
    net = ModelSupernet(space)
    assert [d.label for d in net.relaxed] == ["convolution_block", "feature"]
    x = torch.randn(2, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    out = net(x, {"convolution_block": softmax(0, 0, 0, 0), "feature": softmax(0, 0)})
    assert out.shape == (2, 2)


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_runs_medmnist_cnn_with_darts(tmp_path: Path) -> None:
    data = tmp_path / "tiny.npz"
    arrays = {}
    for split, n, seed in (("train", 48, 0), ("val", 16, 1), ("test", 16, 2)):
        x, y = square_split(n, seed)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y.reshape(n, 1)
    np.savez(data, **arrays)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "--data", str(data), "--space", "medmnist-cnn", "--strategy", "darts",
        "--set", "search.epochs=1", "--set", "search.warmup_epochs=0",
        "--set", "search.batch_size=16",
        "--set", "train.batch_size=16", "--retrain-epochs", "1", "--out", str(out),
        "--device", "cpu",
    ], env={"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"})
    assert result.exit_code == 0, (result.output, result.exception)
    saved = json.loads((out / "architecture.json").read_text())
    assert saved["space"] == "medmnist-cnn"
    space = make_space(saved["space"], **saved["space_options"])
    assert space.validate(saved["arch"]) == saved["arch"]
    model = json.loads((out / "model.json").read_text())
    assert model["arch"] == saved["arch"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    history = (out / "search" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[0])["arch"] == saved["arch"]


# ---------------------------------------------------------------- derived values, reductions


def one_hot_weights(space: ModelSpace, arch: dict) -> dict:
    out = {}
    for d in space.decisions():
        w = torch.zeros(len(d.values))
        picked = arch[d.label] if d.kind == "input" else [list(d.values).index(arch[d.label])]
        w[picked] = 1.0
        out[d.label] = w
    return out


def test_relaxed_derived_widths_and_kernels_equal_the_frozen_model() -> None:
    from test_mutables import DerivedSpace, all_archs

    torch.manual_seed(0)
    space = DerivedSpace()
    net = ModelSupernet(space)
    assert {d.label for d in net.relaxed} == {"w", "k"}
    x = torch.randn(3, 1, 7, 7)
    for arch in all_archs(space):
        frozen = space.freeze(arch).train()
        torch.testing.assert_close(net(x, one_hot_weights(space, arch)), frozen(x))


def test_darts_refuses_concat_inputs_and_single_paths_run_them() -> None:
    from test_mutables import ConcatSpace, all_archs

    torch.manual_seed(0)
    space = ConcatSpace()
    with pytest.raises(ConfigError, match=r"reduction='concat'.*single-path strategy"):
        ModelSupernet(space)
    net = ModelSupernet(space, soft=False)
    x = torch.randn(2, 1, 5, 5)
    for arch in all_archs(space):
        got = net(x, one_hot_weights(space, arch), {"pick": arch["pick"]})
        torch.testing.assert_close(got, space.freeze(arch)(x))


def test_width_derived_from_two_choices_is_a_clear_error() -> None:
    class TwoSources(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            self.fc = MutableLinear(4, choice("a", [1, 2]) * choice("b", [2, 3]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    with pytest.raises(ConfigError, match=r"depends on \['a', 'b'\]"):
        ModelSupernet(TwoSources())
