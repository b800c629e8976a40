"""The ``macro`` space: every architecture builds for any input, ResNet-18 is a point of
it, and its ``train.*`` choices reach the trials and the retrain of a run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

import autonas.pipeline as pipeline
import autonas.trials.search as trial_search
from autonas.config import RunConfig
from autonas.data import from_arrays
from autonas.errors import ConfigError
from autonas.run import RunDir
from autonas.spaces import BuildSpec, make_space
from autonas.spaces.macro import ARCH_CHOICES, resnet18_arch
from autonas.training.losses import Mixup
from autonas.training.trainer import TrainConfig
from toy_space import arrays


@pytest.fixture(scope="module")
def data():
    return from_arrays(arrays(48, 0), arrays(48, 1), arrays(24, 2), name="toy")


def test_sampled_architectures_build_for_any_image_size_channels_and_classes():
    space = make_space("macro")
    rng = random.Random(0)
    for i in range(12):
        arch = space.sample(rng)
        size, channels, classes = ((28, 1, 2), (33, 3, 5), (64, 3, 7))[i % 3]
        model = space.build(arch, BuildSpec(channels, classes, size)).eval()
        with torch.no_grad():
            out = model(torch.randn(2, channels, size, size))
        assert out.shape == (2, classes)


def test_resnet18_is_a_point_of_the_space_and_its_default():
    space = make_space("macro")
    assert space.default_arch() == space.validate(resnet18_arch())
    model = space.build(resnet18_arch(), BuildSpec(1, 2, 28))
    reference = resnet18(num_classes=2)
    reference.conv1 = torch.nn.Conv2d(1, 64, 3, padding=1, bias=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model) == count(reference)


def test_the_choices_change_the_network():
    space = make_space("macro", hyperparameters=False)
    base = space.default_arch()
    spec = BuildSpec(1, 2, 28)
    sizes = {sum(p.numel() for p in space.build({**base, **change}, spec).parameters())
             for change in ({}, {"width": 32}, {"block": "bottleneck"}, {"se": True},
                            {"kernel0": 5}, {"stages": 3}, {"depth1": 3})}
    assert len(sizes) == 7
    pooled = space.build({**base, "stem": "conv3_pool"}, spec).stem(torch.zeros(1, 1, 28, 28))
    assert pooled.shape[-1] == 14


def test_validate_canonicalises_unused_stages_and_names_bad_values():
    space = make_space("macro", hyperparameters=False)
    arch = {**space.default_arch(), "stages": 2, "depth3": 3, "kernel2": 5, "down3": False}
    canonical = space.validate(arch)
    assert (canonical["depth3"], canonical["kernel2"], canonical["down3"]) == (
        ARCH_CHOICES["depth3"][0], ARCH_CHOICES["kernel2"][0], ARCH_CHOICES["down3"][0])
    assert canonical == space.validate({**arch, "depth3": 1})
    with pytest.raises(ConfigError, match="width"):
        space.validate({**arch, "width": 17})
    with pytest.raises(ConfigError, match="hyperparameters"):
        space.validate({**arch, "train.lr": 0.05})
    with pytest.raises(ConfigError, match="no value"):
        space.validate({k: v for k, v in arch.items() if k != "block"})


def test_train_overrides_are_the_train_labels():
    space = make_space("macro")
    arch = {**space.default_arch(), "train.lr": 0.1, "train.mixup": 0.2}
    overrides = space.train_overrides(arch)
    assert overrides["lr"] == 0.1 and overrides["mixup"] == 0.2
    assert set(overrides) == {"lr", "weight_decay", "augment_scale", "label_smoothing",
                              "mixup", "batch_size"}
    assert make_space("macro", hyperparameters=False).train_overrides(
        make_space("macro", hyperparameters=False).default_arch()) == {}


def test_mixup_mixes_reproducibly_and_convexly():
    x = torch.arange(8.0).view(4, 2)
    y = torch.tensor([0, 1, 0, 1])
    mixed, partner, lam = Mixup(0.4, (3, 1))(x, y, step=5)
    again, partner2, lam2 = Mixup(0.4, (3, 1))(x, y, step=5)
    assert torch.equal(mixed, again) and torch.equal(partner, partner2) and lam == lam2
    assert 0.0 <= lam <= 1.0
    perm = [round(float((mixed[i, 0] - lam * x[i, 0]) / (1 - lam)) / 2) for i in range(4)]
    assert sorted(perm) == [0, 1, 2, 3]
    assert torch.equal(partner, y[perm])
    with pytest.raises(ConfigError):
        Mixup(0.0, (0,))


@pytest.mark.parametrize("strategy", ["random", "evolution", "tpe", "bohb"])
def test_strategies_search_the_macro_space_and_the_retrain_uses_its_hyperparameters(
        strategy, data, tmp_path: Path, monkeypatch):
    seen: dict[str, list] = {"trial": [], "retrain": []}
    real_fit = pipeline.fit

    def spy(kind):
        def fit(model, data, cfg, **kwargs):
            seen[kind].append(cfg)
            return real_fit(model, data, cfg, **kwargs)
        return fit

    monkeypatch.setattr(trial_search, "fit", spy("trial"))
    monkeypatch.setattr(pipeline, "fit", spy("retrain"))
    cfg = RunConfig(dataset="toy", space="macro", strategy=strategy, budget=None,
                    search={"max_trials": 3, "trial_epochs": 1}, device="cpu",
                    train=TrainConfig.from_dict({"epochs": 1}))
    run = RunDir.create(tmp_path / strategy, "macro")
    pipeline.execute(cfg, run, ("search", "retrain"), data=data)

    rows = [json.loads(line) for line in
            (run.path / "search" / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["state"] == "COMPLETE" for r in rows)
    space = make_space("macro")
    for row, trial_cfg in zip(rows, seen["trial"], strict=True):
        wanted = space.train_overrides(row["arch"])
        assert {k: getattr(trial_cfg, k) for k in wanted} == wanted
        assert trial_cfg.epochs == 1  # the trial's own length is not overridden
    arch = json.loads((run.path / "architecture.json").read_text())["arch"]
    model = json.loads((run.path / "model.json").read_text())
    assert model["train_overrides"] == space.train_overrides(arch)
    (retrain_cfg,) = seen["retrain"]
    assert {k: getattr(retrain_cfg, k) for k in model["train_overrides"]} == \
        model["train_overrides"]
