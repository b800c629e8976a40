"""The budget holds: one clock from process start, first steps estimated before they are
taken, epoch plans that shrink (and say so) when the machine slows, killed phases billed
only for the time they ran, warnings for results that are not results, a report that stays
small with many classes, and strategy options whose null means null."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autonas.config import RunConfig
from autonas.data import from_arrays
from autonas.pipeline import _budget_left, _count_killed_session, _resolved
from autonas.report import write_report
from autonas.report.html import bounded_resamples
from autonas.report.samples import MAX_CLASSES, write_samples
from autonas.result_checks import result_warnings
from autonas.run import RunDir
from autonas.spaces import make_space
from autonas.startup import apply_omp_wait_policy
from autonas.strategies import SearchContext, make_strategy
from autonas.training import rng as rng_module
from autonas.training.budget import Budget, Deadline, StepTimer, process_start
from autonas.training.metrics import classification_metrics
from autonas.training.plan import EpochPlan
from autonas.training.reserve import finish_seconds
from autonas.training.speed import MachineSpeed
from autonas.training.trainer import TrainConfig, fit

SRC = Path(__file__).resolve().parents[1] / "src"


def _data(n: int = 32, classes: int = 2, side: int = 8):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, side, side), dtype=np.uint8)
    y = np.arange(n) % classes
    return from_arrays((x, y), (x[: n // 2], y[: n // 2]), (x[: n // 2], y[: n // 2]))


class _Slow(nn.Module):
    """A network whose forward pass takes ``seconds`` plus ``per_image`` for each image (a
    stand-in for a big model)."""

    def __init__(self, seconds: float, classes: int = 2, per_image: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.per_image = per_image
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds + self.per_image * x.shape[0])
        return self.head(x.flatten(1))


# ----------------------------------------------------------------------------- the clock


def test_process_start_counts_the_time_before_autonas_was_imported() -> None:
    code = ("import time; time.sleep(0.6); "
            "from autonas.training.budget import process_start; "
            "print(time.monotonic() - process_start())")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert float(out) >= 0.6


def test_process_start_is_in_the_past() -> None:
    assert process_start() <= time.monotonic()


def test_budget_runs_from_the_given_start() -> None:
    budget = Budget(10.0, start=time.monotonic() - 4.0)
    assert budget.remaining() <= 6.0
    assert budget.elapsed() >= 4.0
    assert budget.until_fraction(0.3).remaining() < 0  # 3 s into a clock 4 s old


# ----------------------------------------------------------------------------- first steps


def test_step_timer_guess_is_replaced_by_measurements() -> None:
    timer = StepTimer()
    assert not timer.measured
    timer.guess(2.0)
    assert timer.estimate == 2.0
    timer.add(0.5)
    timer.guess(9.0)  # ignored once a step was timed
    assert timer.measured and timer.estimate == 0.5


def test_first_training_step_is_estimated_before_it_is_taken() -> None:
    """A step that cannot fit is never started, not even the first one."""
    model = _Slow(0.2)
    before = model.head.weight.detach().clone()
    cfg = TrainConfig(epochs=3, batch_size=8, augment=False)
    result = fit(model, _data(), cfg, deadline=Deadline.after(0.45),
                 device=torch.device("cpu"), progress=False)
    assert result.epochs == 0 and result.stopped == "budget"
    assert torch.equal(model.head.weight, before)


def test_first_evaluation_is_estimated_before_the_first_epoch() -> None:
    """Quick steps but a slow validation pass (100 images): no epoch starts whose
    validation could not end before the deadline."""
    model = _Slow(0.0, per_image=0.01)
    cfg = TrainConfig(epochs=1, batch_size=4, augment=False)
    result = fit(model, _data(n=200), cfg, deadline=Deadline.after(0.8),
                 device=torch.device("cpu"), progress=False)
    assert result.epochs == 0 and result.stopped == "budget"


# ----------------------------------------------------------------------------- epoch plans


def test_plan_is_made_over_the_first_epochs_then_kept() -> None:
    plan = EpochPlan(300, fixed=False, max_epochs=300)
    plan.observe(0, 3.0, 100.0, resumed=False)  # warm-up epoch
    plan.observe(1, 2.0, 98.0, resumed=False)
    assert plan.planned == 2 + 49 and plan.first_plan == 51 and plan.baseline == 2.0
    plan.observe(2, 2.0, 96.0, resumed=False)
    first = plan.planned
    assert plan.observe(3, 2.0, 94.0, resumed=False) is None
    assert plan.planned == first and plan.replans == []


def test_plan_shrinks_and_says_so_when_the_machine_slows() -> None:
    plan = EpochPlan(300, fixed=False, max_epochs=300)
    for epoch in range(3):
        plan.observe(epoch, 1.0, 39.0 - epoch, resumed=False)
    assert plan.planned == 3 + 37
    assert plan.observe(3, 1.0, 36.0, resumed=False) is None  # on plan
    assert plan.observe(4, 2.0, 34.0, resumed=False) is None  # one epoch short: kept
    message = plan.observe(5, 3.0, 31.0, resumed=False)  # two slow epochs: re-planned
    assert message is not None
    assert plan.planned == 6 + 15
    assert "planned 40 epochs, got 21" in message and "2.0x slower" in message
    assert plan.replans[-1] == {"epoch": 5, "from": 40, "to": 21, "slowdown": 2.0,
                                "reason": "slower"}
    assert plan.slowdown() == 2.0


def test_resume_keeps_the_plan_when_the_time_left_holds_it() -> None:
    plan = EpochPlan(300, fixed=False, max_epochs=300)
    plan.restore({"planned_epochs": 20, "first_plan": 20, "baseline_epoch_seconds": 2.0})
    assert plan.fit_left(10, 25.0) is None
    assert plan.planned == 20


def test_resume_replans_when_the_time_left_cannot_hold_the_plan() -> None:
    plan = EpochPlan(300, fixed=False, max_epochs=300)
    plan.restore({"planned_epochs": 20, "first_plan": 20, "baseline_epoch_seconds": 2.0})
    message = plan.fit_left(10, 9.0)
    assert plan.planned == 14 and message is not None and "re-planned from 20 to 14" in message


def test_fixed_epochs_are_never_replanned() -> None:
    plan = EpochPlan(8, fixed=True, max_epochs=300)
    for epoch in range(6):
        assert plan.observe(epoch, 1.0 + 5 * epoch, 1.0, resumed=False) is None
    assert plan.planned == 8 and plan.first_plan is None


def test_machine_slowdown_is_asked_once_when_the_epochs_are_planned(caplog) -> None:
    calls: list[int] = []

    def machine() -> float:
        calls.append(1)
        return 3.0

    cfg = TrainConfig(epochs=None, max_epochs=3, batch_size=8, augment=False)
    with caplog.at_level("WARNING", logger="autonas"):
        result = fit(_Slow(0.0), _data(), cfg, deadline=Deadline.after(120.0),
                     device=torch.device("cpu"), progress=False, machine=machine)
    assert result.epochs == 3 and calls == [1] and result.start_slowdown == 3.0
    assert "planned 3 epochs while the machine runs 3.0x slower" in caplog.text


def test_reference_workload_leaves_the_random_state_alone() -> None:
    before = torch.get_rng_state()
    speed = MachineSpeed()
    assert speed.reference > 0 and speed.slowdown() > 0
    assert torch.equal(torch.get_rng_state(), before)


# ----------------------------------------------------------------------------- billing


def _killed_run(tmp_path: Path, ran: float, dead_for: float) -> RunDir:
    run = RunDir(tmp_path)
    now = time.time()
    start = now - dead_for - ran
    run.write_json("status.json", {
        "search": {"state": "done", "seconds": 10.0},
        "retrain": {"state": "running", "seconds": 0.0, "session_start": start,
                    "heartbeat": start + ran},
    })
    run.write_json("environment.json", {"rewritten": True})  # newer than the heartbeat
    return run


def test_killed_phase_is_billed_up_to_its_heartbeat(tmp_path: Path) -> None:
    run = _killed_run(tmp_path, ran=20.0, dead_for=75.0)
    _count_killed_session(run, "retrain")
    entry = run.status()["retrain"]
    assert entry["state"] == "killed"
    assert entry["seconds"] == pytest.approx(20.0, abs=0.01)
    cfg = RunConfig(budget=60.0)
    assert _budget_left(cfg, run, resume=True) == pytest.approx(30.0, abs=0.01)


def test_heartbeat_follows_checkpoints(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.set_phase("retrain", "running", session_start=time.time())
    first = run.status()["retrain"]["heartbeat"]
    time.sleep(0.02)
    run.save_state("retrain/state.pt", {"epoch": 0})
    assert run.status()["retrain"]["heartbeat"] > first
    run.set_phase("retrain", "done")
    beat = run.status()["retrain"]["heartbeat"]
    run.save_state("retrain/state.pt", {"epoch": 1})  # a finished phase has no heartbeat
    assert run.status()["retrain"]["heartbeat"] == beat


# ----------------------------------------------------------------------------- CUDA RNG


def test_checkpoints_carry_the_cuda_random_state(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: CUDA's RNG functions are stood in for, the checkpoint code is real."""
    saved_cuda = [torch.tensor([1, 2, 3], dtype=torch.uint8)]
    restored: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved_cuda)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    run = RunDir(tmp_path)
    cfg = TrainConfig(epochs=1, batch_size=8, augment=False)
    fit(_Slow(0.0), _data(), cfg, deadline=Deadline(None), device=torch.device("cpu"),
        run=run, progress=False)
    state = run.load_state("retrain/state.pt")
    assert state is not None and {"torch_rng", "cuda_rng"} <= set(state)
    assert torch.equal(state["cuda_rng"][0], saved_cuda[0])
    rng_module.restore_rng_state(state)
    assert len(restored) == 1 and torch.equal(restored[0][0], saved_cuda[0])


def test_cpu_only_checkpoints_have_no_cuda_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert set(rng_module.rng_state()) == {"torch_rng"}


# ----------------------------------------------------------------------------- warnings


def test_warnings_for_a_short_retrain_and_a_one_class_model() -> None:
    probs = np.tile([0.9, 0.1], (10, 1))
    warnings = result_warnings({"epochs": 2, "class_names": ["benign", "malignant"]},
                               {"val_probs": probs, "test_probs": probs})
    codes = [w["code"] for w in warnings]
    assert codes == ["short-retrain", "one-class"]
    assert "'benign'" in warnings[1]["message"] and "val and test" in warnings[1]["message"]


def test_warning_for_a_plan_cut_by_a_slower_machine() -> None:
    good = np.eye(2)[np.arange(10) % 2]
    warnings = result_warnings({"epochs": 8, "first_plan": 20, "slowdown": 3.2},
                               {"val_probs": good, "test_probs": good})
    assert [w["code"] for w in warnings] == ["fewer-epochs"]
    assert warnings[0]["message"] == ("planned 20 epochs, got 8, the machine ran 3.2x slower "
                                      "than at the start")


def test_warning_for_a_machine_slower_than_at_the_start() -> None:
    good = np.eye(2)[np.arange(10) % 2]
    warnings = result_warnings({"epochs": 3, "first_plan": 3, "start_slowdown": 7.0},
                               {"val_probs": good, "test_probs": good})
    assert [w["code"] for w in warnings] == ["short-retrain", "slower-machine"]
    assert warnings[1]["message"].startswith("planned 3 epochs, got 3: the machine ran 7.0x "
                                             "slower than at the start of the run")
    assert "about 21 would have fit" in warnings[1]["message"]


def test_a_sound_result_has_no_warnings() -> None:
    good = np.eye(3)[np.arange(12) % 3]
    assert result_warnings({"epochs": 30, "first_plan": 30, "slowdown": 1.0},
                           {"val_probs": good, "test_probs": good}) == []


# ----------------------------------------------------------------------------- report size


def _many_class_run(root: Path, classes: int, n_test: int) -> Path:
    rng = np.random.default_rng(0)
    names = [f"class {i}" for i in range(classes)]
    labels = np.arange(n_test) % classes
    probs = rng.dirichlet(np.ones(classes), n_test).astype(np.float32)
    run = RunDir(root)
    run.write_yaml("config.yaml", {"strategy": "random", "dataset": "many"})
    run.write_json("data.json", {"name": "many", "n_classes": classes, "class_names": names,
                                 "sizes": {"test": n_test}})
    metrics = {"params": 1000, "best_epoch": 0,
               "test": classification_metrics(labels, probs, names),
               "val": classification_metrics(labels, probs, names),
               "warnings": [{"code": "short-retrain", "message": "retraining ran 2 epochs"}]}
    run.write_json("metrics.json", metrics)
    np.savez(run.file("predictions.npz"), test_probs=probs, test_labels=labels,
             val_probs=probs, val_labels=labels)
    x = rng.integers(0, 255, (classes * 4, 8, 8), dtype=np.uint8)
    y = np.arange(classes * 4) % classes
    write_samples(run.file("samples.npz"), from_arrays((x, y), None, (x, y),
                                                       class_names=names))
    return root


def test_report_of_many_classes_stays_small(tmp_path: Path) -> None:
    run = _many_class_run(tmp_path / "run", classes=200, n_test=600)
    with np.load(run / "samples.npz") as samples:
        assert len(set(samples["labels"].tolist())) == MAX_CLASSES
    page = write_report(run, n_resamples=1000).read_text()
    assert len(page.encode()) < 1_500_000
    assert "Warning: not a trustworthy result" in page and "short-retrain" in page
    assert f"{MAX_CLASSES} of the 200 classes" in page
    assert "micro average of 200 classes" in page


def test_bootstrap_resamples_shrink_with_many_classes() -> None:
    assert bounded_resamples(1000, np.zeros((5, 2))) == 1000
    assert bounded_resamples(1000, np.zeros((5, 200))) == 200
    assert bounded_resamples(100, np.zeros((5, 200))) == 100


# ----------------------------------------------------------------------------- settings


def test_null_strategy_options_mean_null() -> None:
    assert make_strategy("darts", search_images=None).search_images is None
    assert make_strategy("p-darts", skip_cap=None).skip_cap is None
    assert make_strategy("darts").search_images == 1200  # absent: the default


def test_config_yaml_records_null_options() -> None:
    cfg = RunConfig(strategy="p-darts", search={"skip_cap": None, "search_images": None})
    resolved = _resolved(cfg, make_space("darts"))
    assert resolved["search"]["skip_cap"] is None
    assert resolved["search"]["search_images"] is None
    again = make_strategy("p-darts", make_space("darts"), **resolved["search"])
    assert again.skip_cap is None and again.search_images is None


# ----------------------------------------------------------------------------- OMP policy


def test_omp_wait_policy_is_set_only_when_asked_and_not_already_set() -> None:
    assert apply_omp_wait_policy({}) is None
    env = {"AUTONAS_OMP_WAIT_POLICY": "passive"}
    assert apply_omp_wait_policy(env) == "PASSIVE" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {"AUTONAS_OMP_WAIT_POLICY": "passive", "OMP_WAIT_POLICY": "ACTIVE"}
    assert apply_omp_wait_policy(env) == "ACTIVE"
    env = {"AUTONAS_OMP_WAIT_POLICY": "sometimes"}
    assert apply_omp_wait_policy(env) is None and "OMP_WAIT_POLICY" not in env


def test_omp_wait_policy_is_set_by_importing_autonas() -> None:
    code = "import os, autonas; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(PYTHONPATH=str(SRC), AUTONAS_OMP_WAIT_POLICY="passive")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out.strip() == "PASSIVE"


def test_cli_clock_starts_at_process_start_only_for_the_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from autonas import cli

    monkeypatch.setattr(sys, "argv", ["/venv/bin/autonas", "run"])
    assert cli.command_clock() == pytest.approx(process_start(), abs=0.05)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert cli.command_clock() is None  # driven from other code: the call starts the clock


def test_time_spent_before_the_run_counts_against_its_budget(tmp_path: Path) -> None:
    """A run whose clock started 59 of its 60 s ago gets no training time."""
    from autonas.errors import ConfigError
    from autonas.pipeline import execute

    cfg = RunConfig(dataset="tiny", strategy="random", budget=60.0, device="cpu",
                    search={"max_trials": 1})
    run = RunDir.create(tmp_path / "run", "tiny")
    with pytest.raises(ConfigError, match=r"first trial|first training epoch"):
        execute(cfg, run, data=_data(), space=make_space("medmnist-cnn"),
                clock_start=time.monotonic() - 59.0)


# ----------------------------------------------------------------------------- leaks per phase


def test_evaluation_reserve_grows_with_the_images_to_predict() -> None:
    """Kept for evaluation: at least the predictions' time, estimated from a timed pass."""
    model = _Slow(0.0, per_image=0.002)
    small = finish_seconds(model, _data(n=40), torch.device("cpu"))
    large = finish_seconds(model, _data(n=400), torch.device("cpu"))
    assert large >= 0.002 * 400  # 200 validation + 200 test images
    assert large > small


def test_one_shot_search_estimates_its_first_step_and_evaluation() -> None:
    strategy = make_strategy("darts", channels=4, layers=2, batch_size=8)
    space = make_space("darts", nodes=2)
    data = _data(n=64)
    ctx = SearchContext(data=data, space=space, run=RunDir("unused"), deadline=Deadline(None),
                        device=torch.device("cpu"))
    strategy._setup(ctx)
    before = torch.get_rng_state()
    step, evaluation = StepTimer(), StepTimer()
    strategy.guess_first_costs(step, evaluation)
    assert step.estimate > 0 and evaluation.estimate > 0 and not step.measured
    assert torch.equal(torch.get_rng_state(), before)  # the probe draws nothing


def test_trial_profiling_is_checked_against_the_deadline(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A trial whose profiling would not fit is not profiled, and the search ends."""
    from autonas.errors import ConfigError
    from autonas.trials import search as trial_search
    from toy_space import arrays

    monkeypatch.setattr(trial_search, "profile_seconds", lambda *args, **kwargs: 1e6)
    profiled: list[int] = []
    monkeypatch.setattr(trial_search, "profile_model",
                        lambda *args, **kwargs: profiled.append(1) or {})
    data = from_arrays(arrays(48, 0), arrays(48, 1), arrays(24, 2), name="toy")
    space = make_space(f"{Path(__file__).parent / 'toy_space.py'}:ToySpace")
    strategy = make_strategy("random", space, max_trials=2, trial_epochs=1,
                             train={"batch_size": 16})
    run = RunDir(tmp_path)
    ctx = SearchContext(data=data, space=space, run=run, deadline=Deadline.after(600.0),
                        device=torch.device("cpu"))
    with pytest.raises(ConfigError):
        strategy.search(ctx)
    rows = run.read_jsonl("search/trials.jsonl")
    assert len(rows) == 1 and rows[0]["state"] == "PRUNED"
    assert rows[0]["error"] == "budget: no time left to profile it"
    assert profiled == []
