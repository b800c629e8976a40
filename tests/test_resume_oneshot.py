"""A whole `autonas run` killed with SIGKILL inside its one-shot search, then resumed,
ends with the architecture and the metrics of the same run left alone (one process, CPU)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_pipeline_cli import TINY, ok, read_jsonl, subprocess_env, write_npz

SEARCH_EPOCHS = 6


def _args(npz: Path, out: Path) -> list[str]:
    return ["run", "--data", str(npz), *TINY, "--set", "search.warmup_epochs=0",
            "--epochs", str(SEARCH_EPOCHS), "--retrain-epochs", "2", "--seed", "3",
            "--budget", "none", "--device", "cpu", "--out", str(out)]


def _scores(run: Path) -> dict:
    """metrics.json without what depends on the machine's speed."""
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("model")  # latency and FLOPs of the profile
    for split in ("val", "test"):
        metrics[split].pop("seconds")
    return metrics


def _kill_inside_search(npz: Path, out: Path, log: Path) -> None:
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "autonas", *_args(npz, out)],
                                stdout=f, stderr=subprocess.STDOUT, env=subprocess_env())
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it was killed: {log.read_text()}")
            history = out / "search" / "history.jsonl"
            if (out / "search" / "state.pt").is_file() and history.is_file() \
                    and len(read_jsonl(history)) >= 1:
                break
            time.sleep(0.02)
        else:
            pytest.fail("no search checkpoint within 180 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_sigkill_inside_oneshot_search_then_resume_matches(tmp_path: Path) -> None:
    npz = write_npz(tmp_path / "tiny.npz")
    reference = tmp_path / "reference"
    ok(*_args(npz, reference))

    run, log = tmp_path / "killed", tmp_path / "killed.log"
    _kill_inside_search(npz, run, log)
    status = json.loads((run / "status.json").read_text())
    assert status["search"]["state"] == "running"  # killed inside the search
    assert "retrain" not in status
    assert 1 <= len(read_jsonl(run / "search" / "history.jsonl")) < SEARCH_EPOCHS
    assert not (run / "metrics.json").exists()

    ok("run", "--resume", run)
    assert "search: resuming after epoch" in (run / "run.log").read_text()
    arch = json.loads((run / "architecture.json").read_text())["arch"]
    assert arch == json.loads((reference / "architecture.json").read_text())["arch"]
    assert read_jsonl(run / "search" / "alphas.jsonl") == \
        read_jsonl(reference / "search" / "alphas.jsonl")
    assert _scores(run) == _scores(reference)
