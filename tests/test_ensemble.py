"""Ensembles as the final model: the average is exact for every head; the ImageClassifier
fills spare time with members and serves, saves and reloads them as one network; a run
killed inside the ensemble phase resumes to the same model; bad settings are named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autonas import ImageClassifier
from autonas.config import ENSEMBLE_AUTO_MAX, RunConfig
from autonas.errors import ConfigError
from autonas.pipeline import load_model
from autonas.run import RunDir
from autonas.spaces.ensemble import Ensemble, FlipAverage, unwrap
from autonas.training.tasks import to_probs

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = {
    "search_options": {"channels": 4, "layers": 2, "epochs": 1, "batch_size": 16},
    "space_options": {"nodes": 2}, "network": {"channels": 4, "layers": 2},
    "train_options": {"batch_size": 16}, "verbose": False, "time_limit": 120,
}


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 16x16 images; class 1 has a bright square in the middle."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
    y = np.arange(n) % 2
    x[y == 1, 4:12, 4:12] = rng.integers(150, 256, size=(int((y == 1).sum()), 8, 8))
    return x, y


# ----------------------------------------------------------------------------- the average


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "coral"])
def test_the_ensemble_output_is_the_mean_probability(head: str) -> None:
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(12, 3)) for _ in range(3)]
    x = torch.randn(5, 3, 2, 2)
    ensemble = Ensemble(members, head=head).eval()
    with torch.no_grad():
        expected = torch.stack([to_probs(m(x), head if head != "coral" else "sigmoid")
                                for m in members]).mean(dim=0)
        got = to_probs(ensemble(x), head if head != "coral" else "sigmoid")
    assert torch.allclose(got, expected, atol=1e-6)


def test_one_member_is_that_network() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x = torch.randn(6, 1, 2, 2)
    with torch.no_grad():
        assert torch.allclose(Ensemble([net])(x).softmax(1), net(x).softmax(1), atol=1e-6)


# ----------------------------------------------------------------------------- ImageClassifier


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": _images(64, 0), "val": _images(24, 1), "test": _images(30, 2)}


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory) -> ImageClassifier:
    """The default (``ensemble='auto'``) with time to spare: fixed epochs, a long limit."""
    clf = ImageClassifier(directory=tmp_path_factory.mktemp("ens") / "run", **TINY)
    return clf.fit(*data["train"], validation_data=data["val"], epochs=2)


def test_spare_time_becomes_members(fitted: ImageClassifier) -> None:
    meta = json.loads((fitted.run_dir_ / "model.json").read_text())
    members = meta["ensemble"]
    assert len(members) == ENSEMBLE_AUTO_MAX
    assert isinstance(fitted.model_.network, FlipAverage)  # arrays: left-right flips
    assert isinstance(unwrap(fitted.model_.network), Ensemble)
    # one-shot DARTS ranks no other architectures: the searched one, with new seeds
    assert all(m["arch"] == meta["arch"] for m in members)
    assert [m["seed"] for m in members] == [None, 1, 2, 3, 4]
    assert all(m["epochs"] == 2 for m in members)
    assert meta["params"] == sum(m["params"] for m in members)
    assert fitted.val_metrics_ == meta["ensemble_val"]
    lines = []
    fitted.summary(print_fn=lines.append)
    assert f"ensemble: {ENSEMBLE_AUTO_MAX} networks" in lines[0]


def test_served_probabilities_are_the_members_mean(fitted: ImageClassifier, data) -> None:
    """Each member rebuilt from its own weights file, run alone, then averaged by hand."""
    from autonas.spaces import BuildSpec, make_space
    from autonas.spaces.base import build_network

    x, _ = data["test"]
    run = RunDir(fitted.run_dir_)
    meta = run.read_json("model.json")
    space = make_space(meta["space"], **meta["space_options"])
    images = fitted.model_.preprocess(torch.as_tensor(x))
    probs = []
    assert meta["tta"] == ["hflip"]
    for member in meta["ensemble"]:
        net = build_network(space, member["arch"], BuildSpec(**meta["build"]))
        net.load_state_dict(torch.load(run.file(member["weights"]), weights_only=True))
        with torch.no_grad():  # and the test-time flip
            probs += [net.eval()(view).softmax(1).numpy() for view in (images, images.flip(3))]
    assert np.allclose(fitted.predict_proba(x), np.mean(probs, axis=0), atol=1e-5)
    assert fitted.evaluate(x, data["test"][1], return_dict=True)["accuracy"] >= 0.8


def test_save_load_and_export_keep_the_ensemble(fitted: ImageClassifier, data,
                                                tmp_path: Path) -> None:
    from autonas.export import export_run, load_state_export

    x, _ = data["test"]
    folder = fitted.save(tmp_path / "saved")
    again = ImageClassifier.load(folder)
    assert isinstance(unwrap(again.model_.network), Ensemble)
    assert np.allclose(again.predict_proba(x), fitted.predict_proba(x), atol=1e-6)
    result = export_run(folder, "state_dict", tmp_path / "model_state.pt")
    assert result["max_abs_diff"] == 0.0
    rebuilt = load_state_export(tmp_path / "model_state.pt")
    assert len(unwrap(rebuilt.network).members) == ENSEMBLE_AUTO_MAX
    pytest.importorskip("onnxruntime")
    onnx = export_run(folder, "onnx", tmp_path / "model.onnx")  # one graph, checked
    assert onnx["max_abs_diff"] <= 1e-4


def test_ensemble_one_and_no_time_limit_keep_one_network(data) -> None:
    x, y = data["train"]
    one = ImageClassifier(ensemble=1, **TINY).fit(x, y, epochs=1)
    unlimited = ImageClassifier(**{**TINY, "time_limit": None}).fit(x, y, epochs=1)
    for clf in (one, unlimited):
        assert not isinstance(unwrap(clf.model_.network), Ensemble)
        assert "ensemble" not in json.loads((clf.run_dir_ / "model.json").read_text())


def test_runners_up_are_the_searchs_next_best(tmp_path: Path) -> None:
    from autonas.pipeline import execute

    cfg = RunConfig.from_dict({
        "dataset": str(_npz(tmp_path / "tiny.npz")), "space": "medmnist-cnn",
        "strategy": "random", "search": {"max_trials": 4, "trial_epochs": 1},
        "train": {"epochs": 1, "batch_size": 16}, "budget": None, "device": "cpu",
        "ensemble": 3, "ensemble_from": "runners_up"})
    run = RunDir.create(tmp_path / "run", "r")
    execute(cfg, run, ("search", "retrain", "ensemble"))
    result = run.read_json("search/result.json")
    meta = run.read_json("model.json")
    ranked = [r["arch"] for r in result["runners_up"]]
    assert len(ranked) == 3 and result["architecture"] not in ranked  # distinct, not the best
    values = [r["value"] for r in result["runners_up"]]
    assert values == sorted(values, reverse=True) and values[0] <= result["best_value"]
    assert [m["arch"] for m in meta["ensemble"]] == [result["architecture"], *ranked[:2]]
    assert [m["trial"] for m in meta["ensemble"][1:]] == \
        [r["number"] for r in result["runners_up"][:2]]


def test_a_given_number_shares_a_budgeted_retraining(tmp_path: Path, caplog) -> None:
    """Under a budget with the epochs left to it, N networks each get 1/N of the
    retraining's time and plan their epochs to fill it; the run still ends in time."""
    import logging

    from autonas.pipeline import execute

    cfg = RunConfig.from_dict({
        "dataset": str(_npz(tmp_path / "tiny.npz")), "space": "medmnist-cnn",
        "strategy": "random", "search": {"max_trials": 2, "trial_epochs": 1},
        "train": {"batch_size": 16}, "budget": 24, "device": "cpu", "ensemble": 2})
    run = RunDir.create(tmp_path / "run", "r")
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="autonas"):
        execute(cfg, run)
    assert time.monotonic() - start <= 24 * 1.03 + 1
    assert "retrain: the first of 2 networks, with 1/2 of the time left" in caplog.text
    members = run.read_json("model.json")["ensemble"]
    assert len(members) == 2 and all(m["epochs"] >= 2 for m in members)
    metrics = run.read_json("metrics.json")
    assert len(metrics["members"]) == 2


@pytest.mark.parametrize(("key", "value", "message"), [
    ("ensemble", 0, "ensemble must be auto or a number"),
    ("ensemble", "many", "ensemble must be auto or a number"),
    ("ensemble", True, "ensemble must be an integer or a string, got True"),
    ("ensemble_from", "best", "ensemble_from must be one of seeds, runners_up"),
])
def test_bad_ensemble_settings_are_named(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({key: value})


def test_ensemble_number_from_the_command_line_is_a_number() -> None:
    assert RunConfig.from_dict({"ensemble": "3"}).ensemble == 3


# ----------------------------------------------------------------------------- killed and resumed

CLI_TINY = [
    "--strategy", "darts", "--epochs", "1", "--retrain-epochs", "4", "--budget", "none",
    "--seed", "5", "--device", "cpu", "--ensemble", "3",
    "--set", "search.channels=4", "--set", "search.layers=2", "--set", "space_options.nodes=2",
    "--set", "search.batch_size=16", "--set", "search.warmup_epochs=0",
    "--set", "network.channels=4", "--set", "network.layers=2", "--set", "train.batch_size=16",
]


def _npz(path: Path) -> Path:
    arrays = {}
    for i, (split, n) in enumerate({"train": 96, "val": 32, "test": 32}.items()):
        x, y = _images(n, 10 + i)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y.reshape(n, 1)
    np.savez(path, **arrays)
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autonas.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "AUTONAS_NO_PROGRESS": "1",
            "AUTONAS_THREADS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ensemble-resume")
    npz = _npz(root / "tiny.npz")
    whole, killed = root / "whole", root / "killed"
    subprocess.run(_cli("run", "--data", str(npz), *CLI_TINY, "--out", str(whole)),
                   env=_env(), check=True, capture_output=True, text=True)
    proc = subprocess.Popen(_cli("run", "--data", str(npz), *CLI_TINY, "--out", str(killed)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=_env())
    history = killed / "ensemble" / "member2" / "history.jsonl"  # the third network
    deadline = time.monotonic() + 240
    while not (history.is_file() and history.read_text().count("\n") >= 2):
        assert proc.poll() is None, "the run ended before the kill point"
        assert time.monotonic() < deadline, "the ensemble never reached the kill point"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "status.json").read_text())["ensemble"]["state"] == "running"
    subprocess.run(_cli("run", "--resume", str(killed), "--budget", "none"), env=_env(),
                   check=True, capture_output=True, text=True)
    return {"whole": whole, "killed": killed}


def test_killed_ensemble_resumes_to_the_same_model(runs) -> None:
    metrics = {}
    for name, run in runs.items():
        found = json.loads((run / "metrics.json").read_text())
        metrics[name] = {"test": {k: found["test"][k] for k in ("accuracy", "auc", "loss")},
                         "members": found["members"]}
    assert metrics["killed"] == metrics["whole"]
    assert len(metrics["whole"]["members"]) == 3
    log = (runs["killed"] / "run.log").read_text()
    assert "ensemble/member2: resuming after epoch" in log
    network = unwrap(load_model(RunDir(runs["killed"]))[0])
    assert isinstance(network, Ensemble) and len(network.members) == 3
    assert json.loads((runs["killed"] / "status.json").read_text())["ensemble"]["state"] == "done"
    page = (runs["killed"] / "report.html").read_text()
    assert "The final model is an ensemble: 3 networks" in page
    assert page.count("the searched architecture, seed") == 2
