"""Test-time augmentation: the average over flips is exact and flip-invariant; a run
averages over exactly the flips its training used, records them, and serves, evaluates and
reloads the model with them; ``tta: false`` and flip-free training average nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autonas.config import RunConfig
from autonas.errors import ConfigError
from autonas.pipeline import execute, load_model
from autonas.run import RunDir
from autonas.spaces.ensemble import Ensemble, FlipAverage, unwrap
from autonas.training.loop import predict_proba
from autonas.training.tasks import to_probs


def _net(out: int = 3) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 5, out))


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_the_average_is_over_the_image_and_its_flips(head: str) -> None:
    torch.manual_seed(0)
    net = _net().eval()
    x = torch.randn(6, 2, 4, 5)
    views = {"hflip": [x, x.flip(3)], "vflip": [x, x.flip(2)],
             "both": [x, x.flip(3), x.flip(2), x.flip(3).flip(2)]}
    for flips, images in (("hflip", views["hflip"]), ("vflip", views["vflip"]),
                          (("hflip", "vflip"), views["both"])):
        flips = [flips] if isinstance(flips, str) else list(flips)
        with torch.no_grad():
            expected = torch.stack([to_probs(net(v), head) for v in images]).mean(dim=0)
            got = to_probs(FlipAverage(net, flips, head)(x), head)
        assert torch.allclose(got, expected, atol=1e-6), flips


def test_the_average_is_invariant_to_its_flips_and_not_to_others() -> None:
    torch.manual_seed(1)
    net = _net().eval()
    x = torch.randn(4, 2, 4, 5)
    with torch.no_grad():
        both = FlipAverage(net, ["vflip", "hflip"])
        assert torch.allclose(both(x.flip(3)), both(x), atol=1e-5)
        assert torch.allclose(both(x.flip(2)), both(x), atol=1e-5)
        left_right = FlipAverage(net, ["hflip"])
        assert torch.allclose(left_right(x.flip(3)), left_right(x), atol=1e-5)
        assert not torch.allclose(left_right(x.flip(2)), left_right(x), atol=1e-3)


def test_an_ensemble_under_flips_averages_every_member_and_view() -> None:
    torch.manual_seed(2)
    members = [_net().eval() for _ in range(3)]
    x = torch.randn(5, 2, 4, 5)
    with torch.no_grad():
        expected = torch.stack([m(v).softmax(1) for m in members
                                for v in (x, x.flip(3))]).mean(dim=0)
        model = FlipAverage(Ensemble(members), ["hflip"])
        assert torch.allclose(model(x).softmax(1), expected, atol=1e-6)
    assert unwrap(model) is model.network and unwrap(members[0]) is members[0]


@pytest.mark.parametrize("flips", [[], ["rotate"], ["hflip", "transpose"]])
def test_unknown_or_no_flips_are_refused(flips: list[str]) -> None:
    with pytest.raises(ValueError, match="flips must be some of hflip, vflip"):
        FlipAverage(_net(), flips)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_tta_must_be_a_boolean(value: object) -> None:
    with pytest.raises(ConfigError, match="tta"):
        RunConfig.from_dict({"tta": value})


# ----------------------------------------------------------------------------- a run


def _npz(path: Path) -> Path:
    """16x16 two-class images: class 1 has a bright square left of centre (so a left-right
    flip changes what a network sees)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in {"train": 96, "val": 32, "test": 32}.items():
        x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
        y = np.arange(n) % 2
        x[y == 1, 5:11, 1:7] = rng.integers(150, 256, size=(int((y == 1).sum()), 6, 6))
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y.reshape(n, 1)
    np.savez(path, **arrays)
    return path


def _run(tmp_path: Path, name: str, **options) -> RunDir:
    cfg = RunConfig.from_dict({
        "dataset": str(_npz(tmp_path / "tiny.npz")), "space": "medmnist-cnn",
        "strategy": "random", "search": {"max_trials": 1, "trial_epochs": 1},
        "train": {"epochs": 2, "batch_size": 16, **options.pop("train", {})},
        "budget": None, "device": "cpu", **options})
    run = RunDir.create(tmp_path / name, name)
    execute(cfg, run)
    return run


def test_a_run_averages_over_the_flips_its_training_used(tmp_path: Path) -> None:
    from autonas.data import load_dataset

    run = _run(tmp_path, "flips")
    meta = run.read_json("model.json")
    assert meta["tta"] == ["hflip"]  # arrays allow left-right flips, not up-down
    model, normalizer, _ = load_model(run)
    assert isinstance(model, FlipAverage) and model.flips == ["hflip"]
    # the evaluated probabilities are the retrained network's, averaged by hand
    net = unwrap(model)
    x, _ = load_dataset(str(tmp_path / "tiny.npz")).split("test")
    by_hand = np.mean([predict_proba(net, v, normalizer=normalizer, device=torch.device("cpu"))
                       for v in (x, x.flip(3))], axis=0)
    saved = np.load(run.file("predictions.npz"))["test_probs"]
    assert np.allclose(saved, by_hand, atol=1e-5)
    plain = predict_proba(net, x, normalizer=normalizer, device=torch.device("cpu"))
    assert not np.allclose(saved, plain, atol=1e-4)  # the flips changed something
    assert "Test-time augmentation" in run.file("report.html").read_text()


@pytest.mark.parametrize("options", [{"tta": False}, {"train": {"augment_flips": False}}],
                         ids=["tta-off", "trained-without-flips"])
def test_no_tta_or_no_trained_flips_average_nothing(tmp_path: Path, options: dict) -> None:
    run = _run(tmp_path, "plain", **options)
    assert run.read_json("model.json")["tta"] == []
    model, _, _ = load_model(run)
    assert not isinstance(model, FlipAverage)
    assert "Test-time augmentation" not in run.file("report.html").read_text()


def test_the_command_line_turns_it_off() -> None:
    from autonas.cli import build_config
    from autonas.cli_options import CommandOptions

    assert build_config(**CommandOptions().config_kwargs()).tta is True
    assert build_config(**CommandOptions(tta=False).config_kwargs()).tta is False
    assert build_config(**CommandOptions(set_=["tta=false"]).config_kwargs()).tta is False
