"""Multi-trial strategies on a toy space whose best answer is known (``toy_space.py``: only
the ``signal`` op sees the image), through the Python API, the CLI and a killed process."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

import autonas
from autonas.cli import app
from autonas.data import from_arrays
from autonas.errors import ConfigError
from autonas.run import RunDir
from autonas.spaces import make_space
from autonas.spaces.darts import DartsSpace
from autonas.strategies import SearchContext, make_strategy
from autonas.strategies.evolution import mutate
from autonas.training.budget import Deadline
from autonas.trials.study import finished_trials, pareto_front
from toy_space import arrays, write_npz

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}
TRAIN = {"batch_size": 16, "lr": 0.1}
FAST = {"trial_epochs": 1, "train": TRAIN}
SPACE_FILE = Path(__file__).parent / "toy_space.py"


@pytest.fixture(scope="module")
def data():
    return from_arrays(arrays(48, 0), arrays(48, 1), arrays(24, 2), name="toy")


@pytest.fixture(scope="module")
def space_file() -> Path:
    return SPACE_FILE


@pytest.fixture(scope="module")
def toy(space_file: Path):
    def make(**options):
        return make_space(f"{space_file}:ToySpace", **options)

    return make


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def search(space, strategy: str, data, out: Path, **options) -> autonas.SearchOutcome:
    return autonas.search(space, strategy, data, out=out, device="cpu",
                          **{**FAST, **options})


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "search" / "trials.jsonl").read_text()
            .splitlines()]


def cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


# ----------------------------------------------------------------------------- known answers


@pytest.mark.parametrize(("strategy", "options"), [
    ("random", {"max_trials": 6}),
    ("evolution", {"max_trials": 8, "population_size": 4, "sample_size": 2}),
    ("reinforce", {"max_trials": 10}),
    ("tpe", {"max_trials": 8, "n_startup_trials": 3}),
    ("bohb", {"max_trials": 8, "n_startup_trials": 3, "trial_epochs": 3}),
])
def test_strategy_finds_the_op_that_sees_the_image(strategy, options, toy, data, tmp_path):
    outcome = search(toy(), strategy, data, tmp_path / "run", **options)
    assert outcome.architecture["op"] == "signal"
    trials = rows(outcome.run_dir)
    # the toy space holds 6 architectures: each is trained once, then the search ends
    assert len(trials) == min(options["max_trials"], 6) == outcome.result["n_trials"]
    assert len({json.dumps(r["arch"], sort_keys=True) for r in trials}) == len(trials)
    if options["max_trials"] > 6:
        assert outcome.stopped == "exhausted: all 6 architectures of the space were trained"
    best = max((r for r in trials if r["state"] == "COMPLETE"), key=lambda r: r["value"])
    assert best["arch"]["op"] == "signal" and best["value"] > 0.9
    blind = [r["value"] for r in trials if r["arch"]["op"] == "const" and r["value"] is not None]
    assert all(v == pytest.approx(0.5) for v in blind)  # constant output: AUC 0.5
    for r in trials:
        assert set(r) >= {"number", "state", "arch", "value", "val", "params", "flops",
                          "latency_ms", "seconds", "error"}
        if r["state"] == "COMPLETE":
            assert r["params"] > 0 and r["flops"] >= 0 and r["latency_ms"] > 0
            assert r["val"]["auc"] is not None and r["error"] is None
    # the run folder is what the pipeline writes for any strategy
    arch = json.loads((outcome.run_dir / "architecture.json").read_text())
    assert arch["arch"] == outcome.architecture and arch["strategy"] == strategy
    study = optuna.load_study(study_name=outcome.run_dir.name,
                              storage=f"sqlite:///{outcome.run_dir / 'search' / 'study.db'}")
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    assert [t.number for t in trained] == [r["number"] for r in trials]
    assert study.trials[best["number"]].params == best["arch"]  # choices stored as params
    if strategy == "bohb":
        assert any(r["state"] == "PRUNED" and r["error"].startswith("pruner") for r in trials)


def test_grid_enumerates_every_architecture_once(toy, data, tmp_path):
    space = toy(ops=["const", "noise", "signal"], widths=[2, 4, 8])
    outcome = search(space, "grid", data, tmp_path / "run")
    tried = [(r["arch"]["op"], r["arch"]["width"]) for r in rows(outcome.run_dir)]
    assert tried == list(itertools.product(["const", "noise", "signal"], [2, 4, 8]))
    assert outcome.stopped == "completed" and outcome.architecture["op"] == "signal"


def test_a_samplers_repeat_is_told_the_earlier_result_not_retrained(toy, data, tmp_path):
    outcome = search(toy(), "tpe", data, tmp_path / "run", max_trials=6, n_startup_trials=3)
    trials = rows(outcome.run_dir)
    assert len({json.dumps(r["arch"], sort_keys=True) for r in trials}) == len(trials) == 6
    study = optuna.load_study(study_name=outcome.run_dir.name,
                              storage=f"sqlite:///{outcome.run_dir / 'search' / 'study.db'}")
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert repeats  # TPE proposed trained architectures again; none of them trained
    by_number = {r["number"]: r for r in trials}
    for t in repeats:
        earlier = by_number[t.user_attrs["repeat_of"]]
        assert t.params == earlier["arch"] and t.state.name == earlier["state"]
        if t.state.name == "COMPLETE":
            assert t.value == earlier["value"]
    assert [t.number for t in finished_trials(study)] == [r["number"] for r in trials]


def test_a_strategy_that_only_repeats_ends_as_converged(toy, data, tmp_path):
    class OneArch(type(toy())):
        def sample(self, rng):
            return {"op": "signal", "width": 2}

    outcome = search(OneArch(), "random", data, tmp_path / "run", max_trials=5,
                     max_collisions=3)
    assert len(rows(outcome.run_dir)) == 1
    assert outcome.stopped == ("converged: 3 proposals in a row were architectures already "
                               "trained")
    again = search(OneArch(), "random", data, tmp_path / "again", max_trials=3, dedup=False)
    assert [r["arch"] for r in rows(again.run_dir)] == [{"op": "signal", "width": 2}] * 3
    with pytest.raises(ConfigError, match="max_collisions must be >= 1"):
        make_strategy("random", max_collisions=0)


def test_grid_too_big_says_how_big(data, toy, tmp_path):
    with pytest.raises(ConfigError, match=r"grid has [\d,]+ architectures"):
        search(DartsSpace(nodes=2), "grid", data, tmp_path / "a")
    with pytest.raises(ConfigError, match=r"grid has 6 architectures .* max_trials is 4"):
        search(toy(), "grid", data, tmp_path / "b", max_trials=4)


def test_failing_trials_are_recorded_and_the_search_goes_on(toy, data, tmp_path):
    space = toy(ops=["boom", "nan", "signal"], widths=[4])
    outcome = search(space, "grid", data, tmp_path / "run")
    by_op = {r["arch"]["op"]: r for r in rows(outcome.run_dir)}
    assert by_op["boom"]["state"] == "FAIL" and "boom: this op cannot" in by_op["boom"]["error"]
    assert by_op["nan"]["state"] == "FAIL" and "NonFiniteLossError" in by_op["nan"]["error"]
    assert by_op["signal"]["state"] == "COMPLETE"
    assert outcome.architecture["op"] == "signal"
    assert outcome.result["states"] == {"COMPLETE": 1, "PRUNED": 0, "FAIL": 2}


def test_every_trial_failing_is_a_clear_error(toy, data, tmp_path):
    with pytest.raises(ConfigError, match=r"none of the 1 trials completed.*boom"):
        search(toy(ops=["boom"], widths=[4]), "grid", data, tmp_path / "run")


def test_constraints_exclude_big_architectures(toy, data, tmp_path):
    space = toy(ops=["signal"], widths=[2, 256])
    outcome = search(space, "grid", data, tmp_path / "run", max_params=500)
    big, small = sorted(rows(outcome.run_dir), key=lambda r: -r["arch"]["width"])
    assert big["state"] == "PRUNED" and big["val"] is None and big["params"] > 500
    assert big["error"].startswith("constraint: params")
    assert small["state"] == "COMPLETE" and small["params"] <= 500
    assert outcome.architecture == {"op": "signal", "width": 2}
    # the constraint is in the study too, where Optuna's samplers read it
    study = optuna.load_study(study_name=outcome.run_dir.name,
                              storage=f"sqlite:///{outcome.run_dir / 'search' / 'study.db'}")
    assert study.trials[big["number"]].constraints["params"] > 0
    assert study.trials[small["number"]].constraints["params"] <= 0


def test_tpe_with_constraints_returns_a_feasible_best(toy, data, tmp_path):
    space = toy(ops=["noise", "signal"], widths=[2, 256])
    outcome = search(space, "tpe", data, tmp_path / "run", max_trials=6, n_startup_trials=2,
                     max_params=500)
    assert outcome.architecture == {"op": "signal", "width": 2}


@pytest.mark.parametrize("strategy", ["grid", "nsga2"])
def test_multi_objective_returns_a_pareto_front(strategy, toy, data, tmp_path):
    space = toy(widths=[2, 8])
    options = {"max_trials": 6, "population_size": 3} if strategy == "nsga2" else {}
    outcome = search(space, strategy, data, tmp_path / "run", objectives=["auc", "params"],
                     **options)
    front = outcome.pareto
    assert front
    values = [f["value"] for f in front]
    for a in values:  # no member dominates another (auc up, params down)
        for b in values:
            assert not (b[0] >= a[0] and b[1] <= a[1] and (b[0] > a[0] or b[1] < a[1]))
    trials = rows(outcome.run_dir)
    assert all(isinstance(r["value"], list) and len(r["value"]) == 2 for r in trials
               if r["state"] == "COMPLETE")
    assert {f["number"] for f in front} == {r["number"] for r in pareto_front(
        trials, ["maximize", "minimize"])}
    if strategy == "grid":  # everything was tried: the best-AUC end of the front is known
        best_auc = max(front, key=lambda f: f["value"][0])
        assert best_auc["arch"] == {"op": "signal", "width": 2}
        assert outcome.architecture == best_auc["arch"]


@pytest.mark.parametrize("strategy", ["random", "reinforce"])
def test_same_seed_same_architectures(strategy, toy, data, tmp_path):
    def archs(seed: int, name: str) -> list[dict]:
        outcome = search(toy(widths=[2, 4, 8]), strategy, data, tmp_path / name, seed=seed,
                         max_trials=5)
        return [(r["arch"], r["value"]) for r in rows(outcome.run_dir)]

    first = archs(0, "a")
    assert archs(0, "b") == first
    assert [a for a, _ in archs(1, "c")] != [a for a, _ in first]


def test_options_are_checked_before_anything_runs(toy, data, tmp_path):
    with pytest.raises(ConfigError, match="needs an end"):
        autonas.search(toy(), "random", data, out=tmp_path / "a", device="cpu")
    with pytest.raises(ConfigError, match="unknown objective 'speed'"):
        make_strategy("tpe", objectives=["auc", "speed"])
    with pytest.raises(ConfigError, match="Hyperband prunes on one objective"):
        make_strategy("bohb", objectives=["auc", "params"])
    with pytest.raises(ConfigError, match="unknown train option"):
        make_strategy("random", train={"learning_rate": 0.1})


def test_strategies_needing_choices_refuse_a_space_without_them(toy, data, tmp_path):
    class SampleOnly(type(toy())):
        def choices(self):
            raise NotImplementedError

        def validate(self, arch):
            return dict(arch)

    strategy = make_strategy("evolution", max_trials=2)
    ctx = SearchContext(data=data, space=SampleOnly(), run=RunDir.create(tmp_path / "r", "r"),
                        deadline=Deadline(None), device=torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"categorical view.*--strategy random"):
        strategy.search(ctx)
    outcome = search(SampleOnly(), "random", data, tmp_path / "ok", max_trials=2)
    assert len(rows(outcome.run_dir)) == 2


# ----------------------------------------------------------------------------- CLI


def test_cli_max_trials_and_storage(space_file, npz, tmp_path):
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    out = tmp_path / "run"
    result = cli("run", "--data", npz, "--space", f"{space_file}:ToySpace", "--strategy",
                 "random", "--max-trials", 3, "--storage", storage, "--seed", 0, "--out", out,
                 "--device", "cpu", "--retrain-epochs", 1, "--set", "search.trial_epochs=1",
                 "--set", "train.batch_size=16", "--budget", "none")
    assert result.exit_code == 0, result.output
    assert len(rows(out)) == 3 and not (out / "search" / "study.db").exists()
    study = optuna.load_study(study_name=out.name, storage=storage)
    assert len(study.trials) == 3
    assert (out / "metrics.json").is_file()  # retrained and evaluated like any run
    result = json.loads((out / "search" / "result.json").read_text())
    assert result["n_trials"] == 3 and result["storage"] == storage
    # one-shot strategies have no such option: the error names it
    bad = cli("search", "--data", npz, "--strategy", "darts", "--max-trials", 3, "--out",
              tmp_path / "bad")
    assert bad.exit_code == 2 and "max_trials" in bad.output


def test_budget_is_kept(space_file, npz, tmp_path):
    out = tmp_path / "run"
    budget = 8.0
    started = time.monotonic()
    result = cli("search", "--data", npz, "--space", f"{space_file}:ToySpace", "--strategy",
                 "random", "--budget", f"{budget}s", "--out", out, "--device", "cpu",
                 "--set", "search.trial_epochs=2", "--set", "train.batch_size=16",
                 "--set", "space_options.slow=0.01",
                 "--set", "search.dedup=false")  # 6 architectures: trains repeats till the end
    wall = time.monotonic() - started
    assert result.exit_code == 0, result.output
    searched = json.loads((out / "status.json").read_text())["search"]["seconds"]
    assert 0.75 * budget <= searched <= 1.05 * budget, searched
    assert wall <= budget + 5  # start-up and writing results on top
    assert json.loads((out / "search" / "result.json").read_text())["stopped"] == "budget"
    assert len(rows(out)) >= 3


# ----------------------------------------------------------------------------- resume


def test_resume_after_sigkill_keeps_every_finished_trial(space_file, npz, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "search.log"
    args = [sys.executable, "-m", "autonas.cli", "search", "--data", str(npz), "--space",
            f"{space_file}:ToySpace", "--strategy", "random", "--max-trials", "6",
            "--budget", "none", "--out", str(out), "--device", "cpu",
            "--set", "search.trial_epochs=2", "--set", "train.batch_size=16",
            "--set", "space_options.slow=0.3"]
    env = {**os.environ, **ENV}
    with log.open("w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env)
    trials = out / "search" / "trials.jsonl"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            done = trials.read_text().count('"COMPLETE"') if trials.exists() else 0
            if done >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        storage = f"sqlite:///{out / 'search' / 'study.db'}"
        while time.monotonic() < deadline and proc.poll() is None:  # kill inside a trial
            study = optuna.load_study(study_name=out.name, storage=storage)
            if any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the search ended before it could be killed mid-trial"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = [r for r in rows(out) if r["state"] == "COMPLETE"]
    assert len(before) >= 2

    result = subprocess.run([sys.executable, "-m", "autonas.cli", "search", "--resume",
                             str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    after = rows(out)
    assert [r["number"] for r in after] == list(range(len(after)))  # one row per trial
    by_number = {r["number"]: r for r in after}
    for r in before:  # every finished trial survived, unchanged
        assert by_number[r["number"]] == r
    interrupted = [r for r in after if r["error"] == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["state"] == "FAIL"  # killed mid-trial
    assert len(after) - len(interrupted) == 6  # interrupted trials do not count
    study = optuna.load_study(study_name=out.name,
                              storage=f"sqlite:///{out / 'search' / 'study.db'}")
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)
    values = {t.number: t.value for t in study.trials
              if t.state == optuna.trial.TrialState.COMPLETE}
    assert all(values[r["number"]] == r["value"] for r in before)
    assert json.loads((out / "architecture.json").read_text())["arch"]["op"] == "signal"


# ----------------------------------------------------------------------------- pieces


def test_darts_cells_as_trials(data, tmp_path):
    outcome = search(DartsSpace(nodes=2), "evolution", data, tmp_path / "run", max_trials=2,
                     trial_channels=4, trial_layers=2, population_size=2, sample_size=1)
    trials = rows(outcome.run_dir)
    assert [r["state"] for r in trials] == ["COMPLETE", "COMPLETE"], trials
    space = DartsSpace(nodes=2)
    assert outcome.architecture == space.validate(outcome.architecture)
    assert set(space.to_choices(trials[0]["arch"])) == set(space.choices())


def test_mutation_changes_exactly_one_choice():
    choices = {"a": [1, 2, 3], "b": ["x", "y"], "fixed": [0]}
    parent = {"a": 1, "b": "x", "fixed": 0}
    rng = random.Random(0)
    for _ in range(50):
        child = mutate(parent, choices, rng)
        changed = [k for k in parent if child[k] != parent[k]]
        assert len(changed) == 1 and changed[0] != "fixed"
        assert child[changed[0]] in choices[changed[0]]


def test_grid_resumes_where_it_was(toy, data):
    grid = make_strategy("grid")
    grid.space, grid.choices = toy(), toy().choices()
    grid.prepare(None)
    history = [{"arch": {"op": "noise", "width": 2}, "error": None},
               {"arch": {"op": "noise", "width": 8}, "error": "interrupted"}]
    order = []
    while (arch := grid.propose(random.Random(0), history)) is not None:
        order.append((arch["op"], arch["width"]))
        history.append({"arch": arch, "error": None})
    # the finished trial is skipped, the interrupted one is proposed again
    assert order == [("noise", 8), ("const", 2), ("const", 8), ("signal", 2), ("signal", 8)]


def test_reinforce_policy_learns_the_rewarded_choice(toy):
    policy = make_strategy("reinforce", lr=1.0)
    policy.space, policy.choices = toy(), toy().choices()
    policy.prepare(None)
    for i in range(30):
        op, width = ["noise", "const", "signal"][i % 3], [2, 8][(i // 3) % 2]
        policy.observe({"number": i, "state": "COMPLETE", "arch": {"op": op, "width": width},
                        "value": 1.0 if op == "signal" else 0.5, "error": None})
    probs = policy.probabilities()
    assert probs["op"][2] > 0.9  # signal
    assert abs(probs["width"][0] - 0.5) < 0.2  # the width does not matter


def test_sigkill_then_resume_gives_the_uninterrupted_result(space_file, npz, tmp_path):
    """Exact resume: the killed trial re-runs with its own proposal and seed, and the
    strategy goes on as if nothing happened: same trials, same best architecture, same
    retrained metrics as a run never interrupted."""
    widths = list(range(1, 13))  # 36 architectures: evolution has room to mutate
    def args(out: Path) -> list[str]:
        return [sys.executable, "-m", "autonas.cli", "run", "--data", str(npz), "--space",
                f"{space_file}:ToySpace", "--strategy", "evolution", "--max-trials", "8",
                "--budget", "none", "--retrain-epochs", "2", "--seed", "3", "--out",
                str(out), "--device", "cpu", "--set", "search.trial_epochs=2",
                "--set", f"space_options.widths={widths}", "--set", "space_options.slow=0.2"]

    env = {**os.environ, **ENV}
    straight = tmp_path / "straight"
    done = subprocess.run(args(straight), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    with log.open("w") as f:
        proc = subprocess.Popen(args(out), stdout=f, stderr=subprocess.STDOUT, env=env)
    storage = f"sqlite:///{out / 'search' / 'study.db'}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # mid-trial, after 5
            done_rows = rows(out) if (out / "search" / "trials.jsonl").exists() else []
            if sum(r["state"] == "COMPLETE" for r in done_rows) >= 5:
                study = optuna.load_study(study_name=out.name, storage=storage)
                now = datetime.now()  # a trial that started under 0.2 s ago: surely mid-trial
                if any(t.state == optuna.trial.TrialState.RUNNING and "worker" in t.user_attrs
                       and (now - t.datetime_start).total_seconds() < 0.2
                       for t in study.trials):
                    break
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = [r for r in rows(out) if r["state"] == "COMPLETE"]
    resumed = subprocess.run([sys.executable, "-m", "autonas.cli", "run", "--resume",
                              str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    after = {r["number"]: r for r in rows(out)}
    assert all(after[r["number"]] == r for r in before)  # no finished trial lost
    killed = [r for r in after.values() if r["error"] == "interrupted"]
    assert len(killed) == 1
    ran = sorted((r for r in after.values() if r["error"] != "interrupted"),
                 key=lambda r: r["proposal"])
    reference = sorted(rows(straight), key=lambda r: r["proposal"])
    strip = ("number", "seconds", "latency_ms")  # timings differ
    assert [{k: v for k, v in r.items() if k not in strip} for r in ran] == \
        [{k: v for k, v in r.items() if k not in strip} for r in reference]

    def result(run: Path) -> dict:
        return json.loads((run / "search" / "result.json").read_text())["architecture"]

    def metrics(run: Path) -> dict:
        m = json.loads((run / "metrics.json").read_text())
        m.pop("model")  # its latency is a timing
        for split in ("val", "test"):
            m[split].pop("seconds")
        return m

    assert result(out) == result(straight)
    assert metrics(out) == metrics(straight)


def test_a_trial_killed_before_its_proposal_was_stored_leaves_no_row(toy, data, tmp_path):
    """Killed between asking and storing the proposal: nothing trained, so no row, and
    the resumed search draws the same proposal for that index."""
    out = tmp_path / "run"
    first = search(toy(), "random", data, out, max_trials=2, seed=5)
    storage = f"sqlite:///{out / 'search' / 'study.db'}"
    study = optuna.load_study(study_name=out.name, storage=storage)
    study.ask()  # left RUNNING without a proposal, as by a kill right after the ask
    strategy = make_strategy("random", toy(), max_trials=3, **FAST)
    ctx = SearchContext(data=data, space=toy(), run=RunDir(out), deadline=Deadline(None),
                        device=torch.device("cpu"), seed=5, resume=True)
    result = strategy.search(ctx)
    got = rows(out)
    assert [r["proposal"] for r in got] == [0, 1, 2]
    assert [r["state"] for r in got] == ["COMPLETE"] * 3
    assert got[:2] == [dict(r) for r in first.history][:2]
    assert result.extra["n_trials"] == 3
