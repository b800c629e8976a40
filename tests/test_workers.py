"""Several worker processes on one multi-trial search through a real PostgreSQL server
(started by the ``postgres_url`` fixture): exactly the asked trials, each once, none lost,
a killed worker's trial re-run with its architecture and seed, late joiners, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from autonas.cli import app
from autonas.errors import ConfigError
from autonas.trials.study import exclusive_sqlite, storage_url
from toy_space import write_npz

SPACE_FILE = Path(__file__).parent / "toy_space.py"
ENV = {**os.environ, "AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1",
       "OMP_NUM_THREADS": "1"}
WIDTHS = list(range(1, 41))  # 3 ops x 40 widths: workers never run out of architectures


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def search_args(npz: Path, out: Path, url: str, *, trials: int, slow: float,
                workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "autonas.cli", "search", "--data", str(npz), "--space",
            f"{SPACE_FILE}:ToySpace", "--strategy", "random", "--max-trials", str(trials),
            "--budget", "none", "--out", str(out), "--device", "cpu", "--storage", url,
            "--workers", str(workers), "--set", "search.trial_epochs=1",
            "--set", "train.batch_size=16", "--set", f"space_options.widths={WIDTHS}",
            "--set", f"space_options.slow={slow}", "--set", "search.heartbeat_interval=1",
            "--set", "search.grace_period=2"]


def rows(out: Path) -> list[dict]:
    path = out / "search" / "trials.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def study_trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage_url(url)).trials
    except KeyError:
        return []


def states(url: str, name: str) -> list[str]:
    return [t.state.name for t in study_trials(url, name)]


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (its local workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_until(condition, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.poll() is None, log.read_text()
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out; log:\n{log.read_text()}")


def check_every_proposal_ran_once(out: Path, asked: int) -> list[dict]:
    """Rows say: ``asked`` proposals, each with one finished trial (re-runs of killed
    ones included), no trial number twice, no architecture trained twice."""
    got = rows(out)
    numbers = [r["number"] for r in got]
    assert len(numbers) == len(set(numbers))
    ran = [r for r in got if r["error"] != "interrupted"]
    assert sorted(r["proposal"] for r in ran) == list(range(asked))
    assert all(r["state"] == "COMPLETE" for r in ran), ran
    archs = [json.dumps(r["arch"], sort_keys=True) for r in ran]
    assert len(set(archs)) == asked
    for r in got:
        if r["error"] == "interrupted":  # re-run with the same proposal, architecture, seed
            rerun = [x for x in ran if x["proposal"] == r["proposal"]]
            assert len(rerun) == 1 and rerun[0]["number"] > r["number"]
            assert (rerun[0]["arch"], rerun[0]["seed"]) == (r["arch"], r["seed"])
    return got


def trials_here(log: Path) -> int:
    for line in log.read_text().splitlines():
        if "trials run here" in line:
            return int(line.split("worker:")[1].split()[0])
    raise AssertionError(log.read_text())


def test_two_workers_run_each_asked_trial_once(npz, postgres_url, tmp_path):
    out = tmp_path / "two"
    result = subprocess.run(search_args(npz, out, postgres_url, trials=10, slow=0.3),
                            capture_output=True, text=True, env=ENV, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    check_every_proposal_ran_once(out, 10)
    trials = study_trials(postgres_url, out.name)
    assert len(trials) == 10 and {t.state.name for t in trials} == {"COMPLETE"}
    counts = [trials_here(log) for log in sorted((out / "search" / "workers").glob("*.log"))]
    assert len(counts) == 2 and sum(counts) == 10 and min(counts) >= 1, counts
    summary = json.loads((out / "search" / "result.json").read_text())
    assert summary["n_trials"] == 10 and summary["architecture"]["op"] == "signal"


def test_a_killed_workers_trial_is_rerun_by_another(npz, postgres_url, tmp_path):
    out = tmp_path / "kill"
    log = tmp_path / "coordinator.log"
    with log.open("w") as f:
        proc = subprocess.Popen(search_args(npz, out, postgres_url, trials=6, slow=1.2),
                                stdout=f, stderr=subprocess.STDOUT, env=ENV)
    try:
        # kill the worker of a trial that started under 0.5 s ago (trials last > 1 s)
        victim: list[int] = []

        def fresh_trial() -> bool:
            now = datetime.now()
            for t in study_trials(postgres_url, out.name):
                if (t.state.name == "RUNNING" and "worker" in t.user_attrs
                        and (now - t.datetime_start).total_seconds() < 0.5):
                    victim.append(int(t.user_attrs["worker"].rsplit(":", 1)[1]))
                    return True
            return False

        wait_until(fresh_trial, proc, log)
        assert victim[0] in children(proc.pid)
        os.kill(victim[0], signal.SIGKILL)
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    got = check_every_proposal_ran_once(out, 6)
    assert sum(r["error"] == "interrupted" for r in got) == 1
    assert not {"RUNNING", "WAITING"} & set(states(postgres_url, out.name))


def test_a_late_worker_takes_its_share(npz, postgres_url, tmp_path):
    out = tmp_path / "late"
    log = tmp_path / "coordinator.log"
    with log.open("w") as f:
        # one local worker with 2-second trials: alone it would need 20 s, so the late one,
        # started once a trial has finished, gets some however slow its start-up
        proc = subprocess.Popen(search_args(npz, out, postgres_url, trials=10, slow=2.0,
                                            workers=1),
                                stdout=f, stderr=subprocess.STDOUT, env=ENV)
    try:
        wait_until(lambda: states(postgres_url, out.name).count("COMPLETE") >= 1, proc, log)
        late = subprocess.run([sys.executable, "-m", "autonas.cli", "worker", "--storage",
                               postgres_url, "--study", out.name, "--device", "cpu"],
                              capture_output=True, text=True, env=ENV, timeout=180)
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert late.returncode == 0, late.stdout + late.stderr
    said = late.stdout + late.stderr
    here = int(said.split("worker done:")[1].split()[0])
    assert here >= 1, said
    check_every_proposal_ran_once(out, 10)


def test_resume_of_a_killed_multi_worker_run(npz, postgres_url, tmp_path):
    out = tmp_path / "resume"
    log = tmp_path / "coordinator.log"
    with log.open("w") as f:
        proc = subprocess.Popen(search_args(npz, out, postgres_url, trials=8, slow=0.4),
                                stdout=f, stderr=subprocess.STDOUT, env=ENV,
                                start_new_session=True)
    try:
        wait_until(lambda: (len([r for r in rows(out) if r["state"] == "COMPLETE"]) >= 2
                            and states(postgres_url, out.name).count("RUNNING") == 2),
                   proc, log)
        os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and both workers
    finally:
        proc.wait()
    before = [r for r in rows(out) if r["state"] == "COMPLETE"]
    result = subprocess.run([sys.executable, "-m", "autonas.cli", "search", "--resume",
                             str(out)], capture_output=True, text=True, env=ENV, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    got = check_every_proposal_ran_once(out, 8)
    by_number = {r["number"]: r for r in got}
    assert all(by_number[r["number"]] == r for r in before)  # nothing finished was lost
    # the killed trials (one per worker, unless one was between trials) re-ran
    assert 1 <= sum(r["error"] == "interrupted" for r in got) <= 2


def test_several_processes_on_sqlite_are_refused(npz, tmp_path):
    result = CliRunner().invoke(app, [
        "search", "--data", str(npz), "--space", f"{SPACE_FILE}:ToySpace", "--strategy",
        "random", "--max-trials", "2", "--workers", "2", "--out", str(tmp_path / "run"),
        "--device", "cpu"], env=ENV)
    assert result.exit_code == 2
    assert "PostgreSQL" in result.output and "SQLite" in result.output
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with exclusive_sqlite(url), pytest.raises(ConfigError, match="PostgreSQL"), \
            exclusive_sqlite(url):
        pass
