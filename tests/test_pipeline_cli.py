"""End to end: the `autonas` command on a tiny synthetic dataset in the MedMNIST layout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from autonas.cli import app
from autonas.spaces.genotype import Genotype

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}
TINY = [
    "--strategy", "darts",
    "--set", "search.channels=4", "--set", "search.layers=2", "--set", "space_options.nodes=2",
    "--set", "search.batch_size=16", "--set", "network.channels=4",
    "--set", "network.layers=2", "--set", "train.batch_size=16",
]
TRAIN_TINY = [  # `train` runs no search: no strategy, no search options
    "--set", "space_options.nodes=2", "--set", "network.channels=4",
    "--set", "network.layers=2", "--set", "train.batch_size=16",
]
SIZES = {"train": 64, "val": 24, "test": 24}


def write_npz(path: Path, drop: tuple[str, ...] = ()) -> Path:
    """uint8 16x16 images; class 1 has a bright square in the middle."""
    arrays = {}
    for i, (split, n) in enumerate(SIZES.items()):
        rng = np.random.default_rng(i)
        x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
        y = (np.arange(n) % 2).astype(np.uint8)
        x[y == 1, 4:12, 4:12] = rng.integers(200, 256, size=(int((y == 1).sum()), 8, 8))
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y.reshape(n, 1)
    for key in drop:
        arrays.pop(key)
    np.savez(path, **arrays)
    return path


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV)
    return result


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails_cleanly(*args: str, code: int = 2):
    result = invoke(*args)
    assert result.exit_code == code, (result.output, result.exception)
    # a clean exit (typer.Exit), not an exception escaping the command
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, **ENV}


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture(scope="module")
def full_run(npz: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    # One warm-up epoch of two: the architecture is stepped, so the genotype is searched
    # (with none stepped, the run trains the space's default: test_honest_ends.py).
    ok("run", "--data", npz, *TINY, "--set", "search.warmup_epochs=1", "--epochs", 2,
       "--retrain-epochs", 2, "--seed", 0, "--out", out, "--device", "cpu")
    return out


# ----------------------------------------------------------------------------- run


@pytest.mark.slow
def test_run_writes_every_file(full_run: Path) -> None:
    run = full_run
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["strategy"] == "darts"
    assert "alpha_lr" in cfg["search"] and "w_lr" in cfg["search"]  # strategy options resolved
    assert cfg["search"]["epochs"] == 2 and cfg["search"]["channels"] == 4
    assert cfg["train"]["epochs"] == 2
    assert cfg["network"] == {"channels": 4, "layers": 2, "auxiliary": False, "dropout": 0.0}

    env = json.loads((run / "environment.json").read_text())
    assert env["seed"] == 0
    assert env["versions"]["torch"] == torch.__version__.split("+")[0]
    assert "python" in env["versions"] and "autonas" in env["versions"]

    data = json.loads((run / "data.json").read_text())
    assert data["sizes"] == SIZES
    assert data["n_classes"] == 2 and data["image_size"] == [16, 16]

    history = read_jsonl(run / "search" / "history.jsonl")
    assert [r["epoch"] for r in history] == [0, 1]
    for r in history:
        assert set(r["entropy"]) == {"normal", "reduce"}
        assert all(0.0 <= v <= 1.0 + 1e-6 for v in r["entropy"].values())
        Genotype.from_dict(r["genotype"])
    alphas = read_jsonl(run / "search" / "alphas.jsonl")
    assert [r["epoch"] for r in alphas] == [0, 1]
    assert np.array(alphas[0]["normal"]).shape == (5, 8)  # nodes=2: 5 edges, 8 ops

    genotype = Genotype.load(run / "genotype.json")
    assert genotype.normal.n_nodes == 2
    assert genotype.to_dict() == history[-1]["genotype"]

    retrain = read_jsonl(run / "retrain" / "history.jsonl")
    assert [r["epoch"] for r in retrain] == [0, 1]

    state = torch.load(run / "model.pt", weights_only=True, map_location="cpu")
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    model = json.loads((run / "model.json").read_text())
    assert model["build"]["channels"] == 4 and model["build"]["layers"] == 2
    assert model["space"] == "darts" and model["arch"] == genotype.to_dict()
    assert model["params"] == sum(v.numel() for k, v in state.items()
                                  if "running" not in k and "num_batches" not in k)

    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        m = metrics[split]
        assert 0.0 <= m["accuracy"] <= 1.0
        assert m["auc"] is not None and 0.0 <= m["auc"] <= 1.0
        assert np.array(m["confusion_matrix"]).sum() == SIZES[split]
        assert np.isfinite(m["loss"])

    status = json.loads((run / "status.json").read_text())
    assert {p: status[p]["state"] for p in ("search", "retrain", "evaluate")} == {
        "search": "done", "retrain": "done", "evaluate": "done"}
    assert all(status[p]["seconds"] >= 0 for p in status)
    result = json.loads((run / "search" / "result.json").read_text())
    assert result["stopped"] == "completed" and result["epochs"] == 2
    assert (run / "run.log").stat().st_size > 0
    assert "search finished" in (run / "run.log").read_text()


def test_run_resume_without_budget_left(full_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "finished"
    shutil.copytree(full_run, run)
    status = json.loads((run / "status.json").read_text())
    used = sum(p["seconds"] for p in status.values())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["budget"] = used  # the run has spent exactly its budget
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # a finished run has nothing left to do: resuming it only prints its summary
    before = (run / "metrics.json").read_text()
    ok("run", "--resume", run)
    assert (run / "metrics.json").read_text() == before
    # an unfinished phase needs time the run no longer has
    status["retrain"]["state"] = "interrupted"
    (run / "status.json").write_text(json.dumps(status))
    result = fails_cleanly("run", "--resume", run)
    assert "--budget" in result.output


def test_resume_refuses_settings_it_would_ignore(full_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "copy"
    shutil.copytree(full_run, run)
    before = (run / "config.yaml").read_text()
    for command in ("run", "search"):
        result = fails_cleanly(command, "--resume", run, "--max-trials", 40, "--set",
                               "search.epochs=9", "--strategy", "darts")
        text = " ".join(result.output.split())  # the console wraps long lines
        named = text.split(" so ")[1].split(" would be ignored")[0]
        assert sorted(named.split(", ")) == ["--max-trials", "--set", "--strategy"]
        assert "config.yaml first" in text
    assert (run / "config.yaml").read_text() == before  # nothing ran
    ok("run", "--resume", run, "--budget", "10m", "--device", "cpu")


# ----------------------------------------------------------------------------- pieces


@pytest.mark.slow
def test_search_train_evaluate(npz: Path, tmp_path: Path) -> None:
    search_dir = tmp_path / "search"
    ok("search", "--data", npz, *TINY, "--epochs", 2, "--out", search_dir)
    for name in ("config.yaml", "environment.json", "data.json", "genotype.json",
                 "search/history.jsonl", "search/alphas.jsonl", "search/result.json",
                 "status.json", "run.log"):
        assert (search_dir / name).is_file(), name
    assert not (search_dir / "model.pt").exists()
    status = json.loads((search_dir / "status.json").read_text())
    assert list(status) == ["search"] and status["search"]["state"] == "done"
    genotype = Genotype.load(search_dir / "genotype.json")

    train_dir = tmp_path / "train"
    ok("train", "--genotype", search_dir / "genotype.json", "--data", npz,
       *TRAIN_TINY, "--epochs", 2, "--out", train_dir)
    for name in ("config.yaml", "model.pt", "model.json", "retrain/history.jsonl",
                 "genotype.json", "status.json"):
        assert (train_dir / name).is_file(), name
    assert not (train_dir / "metrics.json").exists()
    assert Genotype.load(train_dir / "genotype.json") == genotype
    model = json.loads((train_dir / "model.json").read_text())
    assert model["arch"] == genotype.to_dict()
    assert len(read_jsonl(train_dir / "retrain" / "history.jsonl")) == 2

    ok("evaluate", train_dir)
    metrics = json.loads((train_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        assert np.array(metrics[split]["confusion_matrix"]).sum() == SIZES[split]
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
    assert json.loads((train_dir / "status.json").read_text())["evaluate"]["state"] == "done"


def test_train_needs_genotype_or_resume(npz: Path, tmp_path: Path) -> None:
    result = fails_cleanly("train", "--data", npz, "--out", tmp_path / "t")
    assert "--genotype" in result.output
    assert not (tmp_path / "t").exists()


def test_evaluate_after_budget_used(full_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "spent"
    shutil.copytree(full_run, run)
    (run / "metrics.json").unlink()
    status = json.loads((run / "status.json").read_text())
    del status["evaluate"]
    (run / "status.json").write_text(json.dumps(status))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["budget"] = sum(p["seconds"] for p in status.values())
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    ok("evaluate", run)
    assert (run / "metrics.json").is_file()


def test_evaluate_without_model(full_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "nomodel"
    shutil.copytree(full_run, run)
    (run / "model.pt").unlink()
    result = fails_cleanly("evaluate", run)
    assert "model.pt" in result.output
    result = fails_cleanly("evaluate", tmp_path / "not-a-run")
    assert "config.yaml" in result.output


# ----------------------------------------------------------------------------- bad input


def test_missing_data_file(tmp_path: Path) -> None:
    result = fails_cleanly("run", "--data", tmp_path / "nope.npz", *TINY,
                           "--out", tmp_path / "r")
    assert "nope.npz" in result.output


def test_missing_data_file_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "autonas.cli", "search", "--data", str(tmp_path / "nope.npz"),
         "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    assert "not found" in output


def test_unknown_strategy(npz: Path, tmp_path: Path) -> None:
    result = fails_cleanly("run", "--data", npz, "--strategy", "evolution9000",
                           "--out", tmp_path / "r")
    assert "evolution9000" in result.output and "darts" in result.output


@pytest.mark.parametrize("key", [
    "colour=blue", "search.colour=blue", "train.colour=blue",
    "network.colour=blue",
])
def test_unknown_set_key(npz: Path, tmp_path: Path, key: str) -> None:
    result = fails_cleanly("run", "--data", npz, "--set", key, "--out", tmp_path / "r")
    assert "colour" in result.output


def test_set_without_equals(npz: Path, tmp_path: Path) -> None:
    result = fails_cleanly("run", "--data", npz, "--set", "search.epochs", "--out",
                           tmp_path / "r")
    assert "KEY=VALUE" in result.output


@pytest.mark.parametrize("budget", ["10x", "-5", "0"])
def test_bad_budget(npz: Path, tmp_path: Path, budget: str) -> None:
    result = fails_cleanly("run", "--data", npz, "--budget", budget, "--out", tmp_path / "r")
    assert budget in result.output
    assert not (tmp_path / "r").exists()


def test_npz_missing_keys(tmp_path: Path) -> None:
    bad = write_npz(tmp_path / "bad.npz", drop=("val_labels", "test_images"))
    result = fails_cleanly("search", "--data", bad, *TINY, "--out", tmp_path / "r")
    assert "val_labels" in result.output


def test_out_folder_not_empty(npz: Path, full_run: Path) -> None:
    result = fails_cleanly("search", "--data", npz, *TINY, "--out", full_run)
    assert "--resume" in result.output


# ----------------------------------------------------------------------------- determinism


def _search(npz: Path, out: Path, seed: int) -> None:
    ok("search", "--data", npz, *TINY, "--set", "search.warmup_epochs=0", "--epochs", 2,
       "--seed", seed, "--out", out, "--device", "cpu")


@pytest.mark.slow
def test_same_seed_same_search(npz: Path, tmp_path: Path) -> None:
    _search(npz, tmp_path / "a", 0)
    _search(npz, tmp_path / "b", 0)
    _search(npz, tmp_path / "c", 1)
    a, b, c = (tmp_path / n for n in "abc")
    assert (a / "genotype.json").read_text() == (b / "genotype.json").read_text()
    rows_a = read_jsonl(a / "search" / "alphas.jsonl")
    rows_b = read_jsonl(b / "search" / "alphas.jsonl")
    rows_c = read_jsonl(c / "search" / "alphas.jsonl")
    assert len(rows_a) == 2
    assert rows_a == rows_b
    # the alphas moved (no warm-up): the rows of the two epochs differ
    assert rows_a[0]["normal"] != rows_a[1]["normal"]
    assert rows_a[-1]["normal"] != rows_c[-1]["normal"]
    hist_a = read_jsonl(a / "search" / "history.jsonl")
    hist_b = read_jsonl(b / "search" / "history.jsonl")
    for ra, rb in zip(hist_a, hist_b):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_loss"] == rb["val_loss"]


def test_second_order_search_runs(npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "darts2"
    ok("search", "--data", npz, *TINY, "--strategy", "darts2", "--set",
       "search.warmup_epochs=0", "--set", "search.alpha_lr=0.1", "--epochs", 1,
       "--out", out, "--device", "cpu")
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["strategy"] == "darts2" and cfg["search"]["order"] == 2
    alphas = read_jsonl(out / "search" / "alphas.jsonl")
    assert len(alphas) == 1
    w = np.array(alphas[0]["normal"])
    assert np.allclose(w.sum(-1), 1.0)
    assert np.abs(w - 1 / 8).max() > 1e-2  # the architecture moved away from uniform
    Genotype.load(out / "genotype.json")


# ----------------------------------------------------------------------------- resume

RESUME_EPOCHS = 10


def _start_search(npz: Path, out: Path, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "autonas.cli", "search", "--data", str(npz), *TINY,
            "--set", "search.warmup_epochs=0", "--epochs", str(RESUME_EPOCHS), "--seed", "3",
            "--device", "cpu", "--out", str(out)]
    with log.open("w") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=subprocess_env())


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, log: Path) -> None:
    history = out / "search" / "history.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"search ended early ({proc.returncode}): {log.read_text()}")
        if (out / "search" / "state.pt").is_file() and history.is_file() \
                and len(read_jsonl(history)) >= 1:
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no checkpoint within 120 s")


@pytest.fixture(scope="module")
def reference_search(npz: Path, tmp_path_factory) -> Path:
    """The same search as the interrupted ones, run without interruption."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    ok("search", "--data", npz, *TINY, "--set", "search.warmup_epochs=0",
       "--epochs", RESUME_EPOCHS, "--seed", 3, "--device", "cpu", "--out", out)
    return out


def _check_resumed(out: Path, before: list[dict], reference: Path) -> None:
    history = read_jsonl(out / "search" / "history.jsonl")
    assert [r["epoch"] for r in history] == list(range(RESUME_EPOCHS))
    # rows written before the interrupt are untouched
    assert history[: len(before)] == before
    assert "resuming after epoch" in (out / "run.log").read_text()
    alphas = read_jsonl(out / "search" / "alphas.jsonl")
    assert [r["epoch"] for r in alphas] == list(range(RESUME_EPOCHS))
    status = json.loads((out / "status.json").read_text())
    assert status["search"]["state"] == "done"
    result = json.loads((out / "search" / "result.json").read_text())
    assert result["epochs"] == RESUME_EPOCHS and result["stopped"] == "completed"
    # continuing from the checkpoint gives exactly the uninterrupted search (CPU)
    assert alphas == read_jsonl(reference / "search" / "alphas.jsonl")
    assert (out / "genotype.json").read_text() == (reference / "genotype.json").read_text()


@pytest.mark.slow
def test_resume_after_sigint(npz: Path, tmp_path: Path, reference_search: Path) -> None:
    out, log = tmp_path / "run", tmp_path / "search.log"
    proc = _start_search(npz, out, log)
    try:
        _wait_for_checkpoint(proc, out, log)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert code == 130, output
    assert "Traceback" not in output
    assert "--resume" in output
    status = json.loads((out / "status.json").read_text())
    assert status["search"]["state"] == "interrupted"
    before = read_jsonl(out / "search" / "history.jsonl")
    assert 1 <= len(before) < RESUME_EPOCHS

    ok("search", "--resume", out)
    _check_resumed(out, before, reference_search)


@pytest.mark.slow
def test_resume_after_sigkill(npz: Path, tmp_path: Path, reference_search: Path) -> None:
    out, log = tmp_path / "run", tmp_path / "search.log"
    proc = _start_search(npz, out, log)
    try:
        _wait_for_checkpoint(proc, out, log)
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = json.loads((out / "status.json").read_text())
    assert status["search"]["state"] == "running"
    before = read_jsonl(out / "search" / "history.jsonl")
    state = torch.load(out / "search" / "state.pt", weights_only=True)
    assert 1 <= state["n_history"] <= len(before) < RESUME_EPOCHS
    before = before[: state["n_history"]]  # a row newer than the checkpoint is redone

    ok("search", "--resume", out)
    _check_resumed(out, before, reference_search)


# ----------------------------------------------------------------------------- budget


@pytest.mark.slow
def test_run_respects_budget(npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "budget"
    budget = 20.0
    start = time.monotonic()
    ok("run", "--data", npz, *TINY, "--set", "search.epochs=500", "--budget", "20s",
       "--out", out, "--device", "cpu")
    wall = time.monotonic() - start
    assert wall <= budget * 1.05 + 6.0, wall
    status = json.loads((out / "status.json").read_text())
    assert all(status[p]["state"] == "done" for p in ("search", "retrain", "evaluate"))
    assert status["search"]["seconds"] <= 0.4 * budget + 2.0
    result = json.loads((out / "search" / "result.json").read_text())
    assert result["stopped"] == "budget"
    assert 1 <= result["epochs"] < 500
    model = json.loads((out / "model.json").read_text())
    assert model["epochs"] >= 1
    assert (out / "metrics.json").is_file()


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [[], ["run"], ["search"], ["train"], ["evaluate"],
                                     ["strategies"], ["datasets"]])
def test_help(command: list[str]) -> None:
    result = ok(*command, "--help")
    assert "Usage" in result.output


def test_strategies_and_datasets_lists() -> None:
    result = ok("strategies")
    assert "darts" in result.output and "darts2" in result.output
    result = ok("datasets")
    assert "breastmnist" in result.output
