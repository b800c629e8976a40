"""`autonas tune`: hyperparameter search for a finished run's architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autonas.cli import app
from autonas.config import RunConfig
from autonas.data import Augment, from_arrays
from autonas.training.trainer import TrainConfig, train_augment
from toy_space import arrays, write_npz

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}
SPACE = f"{Path(__file__).parent / 'toy_space.py'}:ToySpace"
TUNED = {"lr", "weight_decay", "batch_size", "augment_pad", "augment_flips", "loss",
         "class_weights"}


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A tiny search + retrain + evaluation with the toy space."""
    root = tmp_path_factory.mktemp("tune")
    npz = write_npz(root / "tiny.npz")
    out = root / "run"
    result = cli("run", "--data", npz, "--space", SPACE, "--strategy", "random",
                 "--max-trials", 2, "--retrain-epochs", 1, "--budget", "none", "--out", out,
                 "--device", "cpu", "--set", "search.trial_epochs=1",
                 "--set", "train.batch_size=16")
    assert result.exit_code == 0, result.output
    return out


def test_tune_writes_best_settings_and_trials(finished_run: Path) -> None:
    result = cli("tune", finished_run, "--max-trials", 4, "--trial-epochs", 2, "--budget",
                 "none", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = read_rows(finished_run / "tune" / "trials.jsonl")
    assert [r["number"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert set(r["hparams"]) >= TUNED - {"augment_flips"} and r["seconds"] > 0
        assert r["state"] in ("COMPLETE", "PRUNED", "FAIL")
        assert 1e-3 <= r["hparams"]["lr"] <= 0.3 and r["hparams"]["loss"] in ("ce", "focal")
        assert 0 <= r["hparams"]["augment_pad"] <= 4  # 16 px images: up to a quarter
    summary = json.loads((finished_run / "tune" / "result.json").read_text())
    best = next(r for r in rows if r["number"] == summary["best_trial"])
    assert best["state"] == "COMPLETE" and summary["value"] == best["value"]
    assert best["value"] == max(r["value"] for r in rows if r["state"] == "COMPLETE")

    # best.yaml is a config file the CLI accepts, holding the tuned settings
    best_yaml = finished_run / "tune" / "best.yaml"
    cfg = RunConfig.load(best_yaml)
    for key, value in best["hparams"].items():
        assert getattr(cfg.train, key) == value
    assert set(yaml.safe_load(best_yaml.read_text())) == {"train"}

    # running it again continues the same study
    again = cli("tune", finished_run, "--max-trials", 5, "--trial-epochs", 2, "--budget",
                "none", "--device", "cpu")
    assert again.exit_code == 0, again.output
    assert [r["number"] for r in read_rows(finished_run / "tune" / "trials.jsonl")] == \
        [0, 1, 2, 3, 4]


def test_tune_then_retrain(finished_run: Path, tmp_path: Path) -> None:
    result = cli("tune", finished_run, "--max-trials", 1, "--trial-epochs", 1, "--budget",
                 "2m", "--device", "cpu", "--retrain", "--storage",
                 f"sqlite:///{tmp_path / 'tune.db'}")
    assert result.exit_code == 0, result.output
    tuned = finished_run / "tuned"
    metrics = json.loads((tuned / "metrics.json").read_text())
    assert metrics["test"]["n"] == 24
    train = yaml.safe_load((tuned / "config.yaml").read_text())["train"]
    best = yaml.safe_load((finished_run / "tune" / "best.yaml").read_text())["train"]
    assert {k: train[k] for k in TUNED & set(best)} == {k: best[k] for k in TUNED & set(best)}
    assert json.loads((tuned / "model.json").read_text())["arch"] == json.loads(
        (finished_run / "architecture.json").read_text())["arch"]


def test_tune_needs_a_searched_run(tmp_path: Path) -> None:
    result = cli("tune", tmp_path, "--max-trials", 1)
    assert result.exit_code == 2 and "not a run folder" in " ".join(result.output.split())


def test_augmentation_strength_comes_from_the_train_config() -> None:
    data = from_arrays(arrays(8, 0, 16), arrays(4, 1, 16), arrays(4, 2, 16), hflip=True)
    assert train_augment(TrainConfig(), data) == Augment.default_for(data)
    strong = train_augment(TrainConfig(augment_pad=4, augment_flips=False), data)
    assert strong == Augment(pad=4, hflip=False, vflip=False)
    assert train_augment(TrainConfig(augment_pad=0, augment_flips=False), data).is_identity
