"""Killing `autonas run` (SIGKILL) inside retraining and resuming it gives the same model
and test metrics as an uninterrupted run with the same seed; the killed time is billed only
up to the last heartbeat, and the epoch plan survives the resume."""

from __future__ import annotations

import json
import logging
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

from autonas.config import RunConfig
from autonas.pipeline import evaluate_phase, load_data
from autonas.report import write_report
from autonas.run import RunDir

SRC = Path(__file__).resolve().parents[1] / "src"
RETRAIN_EPOCHS = 12
KILL_AFTER_EPOCHS = 3
TINY = [
    "--strategy", "darts", "--epochs", "1", "--retrain-epochs", str(RETRAIN_EPOCHS),
    "--budget", "none", "--seed", "3", "--device", "cpu",
    "--set", "search.channels=4", "--set", "search.layers=2", "--set", "space_options.nodes=2",
    "--set", "search.batch_size=16", "--set", "search.warmup_epochs=0",
    "--set", "network.channels=4", "--set", "network.layers=2",
    "--set", "train.batch_size=16", "--set", "train.drop_path=0.2",
]


def _npz(path: Path) -> Path:
    """uint8 16x16 images; class 1 has a bright square in the middle."""
    arrays = {}
    for i, (split, n) in enumerate({"train": 96, "val": 32, "test": 32}.items()):
        rng = np.random.default_rng(i)
        x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
        y = (np.arange(n) % 2).astype(np.uint8)
        x[y == 1, 4:12, 4:12] = rng.integers(140, 256, size=(int((y == 1).sum()), 8, 8))
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y.reshape(n, 1)
    np.savez(path, **arrays)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "AUTONAS_NO_PROGRESS": "1",
            "AUTONAS_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autonas.cli", *args]


def _rows(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.endswith("}"))


def _results(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        metrics[split].pop("seconds", None)
    return {"val": metrics["val"], "test": metrics["test"],
            "best_epoch": metrics["best_epoch"], "warnings": metrics["warnings"],
            "arch": json.loads((run / "architecture.json").read_text())["arch"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume-retrain")
    npz = _npz(root / "tiny.npz")
    whole = root / "whole"
    subprocess.run(_cli("run", "--data", str(npz), *TINY, "--out", str(whole)), env=_env(),
                   check=True, capture_output=True, text=True)

    killed = root / "killed"
    log = (root / "killed.log").open("w")
    proc = subprocess.Popen(_cli("run", "--data", str(npz), *TINY, "--out", str(killed)),
                            stdout=log, stderr=subprocess.STDOUT, env=_env())
    history = killed / "retrain" / "history.jsonl"
    deadline = time.monotonic() + 240
    while _rows(history) < KILL_AFTER_EPOCHS and proc.poll() is None:
        assert time.monotonic() < deadline, "retraining never reached the kill point"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    status = json.loads((killed / "status.json").read_text())
    assert status["retrain"]["state"] == "running", "the run ended before the kill"
    killed_at = _rows(history)
    assert KILL_AFTER_EPOCHS <= killed_at < RETRAIN_EPOCHS
    subprocess.run(_cli("run", "--resume", str(killed), "--budget", "none"), env=_env(),
                   check=True, capture_output=True, text=True)
    return {"whole": whole, "killed": killed, "status_at_kill": status}


def test_resumed_retrain_gives_the_metrics_of_an_uninterrupted_one(runs) -> None:
    assert _results(runs["killed"]) == _results(runs["whole"])


def test_resume_kept_the_epoch_plan(runs) -> None:
    model = json.loads((runs["killed"] / "model.json").read_text())
    assert model["epochs"] == model["planned_epochs"] == RETRAIN_EPOCHS
    log = (runs["killed"] / "run.log").read_text()
    assert "resuming after epoch" in log and "re-planned" not in log


def test_killed_retrain_was_billed_to_its_last_heartbeat(runs) -> None:
    at_kill = runs["status_at_kill"]["retrain"]
    assert at_kill["heartbeat"] >= at_kill["session_start"]
    status = json.loads((runs["killed"] / "status.json").read_text())
    assert status["retrain"]["state"] == "done"
    whole = json.loads((runs["whole"] / "status.json").read_text())
    # The killed session's time counts once, up to its heartbeat, not up to the resume.
    billed_before = at_kill["heartbeat"] - at_kill["session_start"]
    assert status["retrain"]["seconds"] >= billed_before
    assert set(status) == set(whole)


def test_short_retrain_is_flagged_in_metrics_log_and_report(runs, tmp_path: Path,
                                                           caplog) -> None:
    whole = json.loads((runs["whole"] / "metrics.json").read_text())
    assert whole["warnings"] == []  # 12 epochs of a model that tells the classes apart
    short = Path(shutil.copytree(runs["whole"], tmp_path / "short"))
    info = json.loads((short / "model.json").read_text())
    info["epochs"] = 2
    (short / "model.json").write_text(json.dumps(info))
    run = RunDir(short)
    cfg = RunConfig.from_dict(run.read_yaml("config.yaml"))
    with caplog.at_level(logging.WARNING, logger="autonas"):
        metrics = evaluate_phase(run, load_data(cfg), torch.device("cpu"))
    assert [w["code"] for w in metrics["warnings"]] == ["short-retrain"]
    assert json.loads((short / "metrics.json").read_text())["warnings"] == metrics["warnings"]
    assert "warning (short-retrain): retraining ran 2 epochs" in caplog.text
    page = write_report(short).read_text()
    assert "Warning: not a trustworthy result" in page
