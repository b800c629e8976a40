"""Data-parallel search and retraining: real process groups of 2 gloo ranks on CPU.

The equality tests run the same steps in one process (in the test) and in two ranks (one
launch for all strategies, to pay the start-up of the processes once) and compare the
architecture weights and the supernet weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autonas.data import from_arrays
from autonas.recorder import Recorder
from autonas.run import RunDir
from autonas.spaces.darts import DartsSpace
from autonas.strategies import SearchContext, make_strategy
from autonas.training import distributed
from autonas.training.budget import Deadline
from autonas.training.trainer import TrainConfig, fit

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}
STEPS = 3
SECOND_ORDER_STEPS = 2
"""Second order: the finite-difference Hessian term magnifies float noise of the order of
summation from the third step on (a 5e-6 change of the alphas moves its gradient by 1e-4),
so its equality is checked over two steps, where it holds to 1e-7."""
CASES = {  # strategy: options (an odd batch for darts: shards of 5 and 4 images)
    "darts": {"batch_size": 9},
    "darts2": {"batch_size": 8},
    "pc-darts": {"batch_size": 8, "k": 2},
    "gdas": {"batch_size": 8},
    "darts-minus": {"batch_size": 8},
    "spos": {"batch_size": 8},
    "proxyless": {"batch_size": 8},
}


def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 90, (48, 12, 12), dtype=np.uint8)
    y = np.arange(48) % 2
    x[y == 1, 3:9, 3:9] = 220
    return from_arrays((x, y), (x[:12], y[:12]), (x[:12], y[:12]))


def _strategy(name: str, **options):
    return make_strategy(name, DartsSpace(nodes=2), channels=4, layers=2, warmup_epochs=0,
                         alpha_lr=0.1, **options)


def search_steps(name: str, options: dict) -> dict[str, torch.Tensor]:
    """``STEPS`` one-shot search steps (architecture, then weights) from seed 0."""
    strategy = _strategy(name, **options)
    ctx = SearchContext(data=tiny_data(), space=DartsSpace(nodes=2), run=RunDir("unused"),
                        deadline=Deadline(None), device=torch.device("cpu"),
                        recorder=Recorder(None))
    strategy._setup(ctx)
    strategy.begin_epoch(0)
    strategy.net.train()
    first_grads = {}
    steps = SECOND_ORDER_STEPS if name == "darts2" else STEPS
    for step, (xt, yt, xv, yv) in zip(range(steps), strategy._batches()):
        with distributed.global_batch_statistics():
            strategy.arch_step(xt, yt, xv, yv)
            if step == 0:  # the all-ranks gradient the first architecture step used
                first_grads = {f"grad.{k}": p.grad.clone()
                               for k, p in strategy.arch.named_parameters()
                               if p.grad is not None}
            strategy.weight_step(xt, yt)
    return {**first_grads,
            **{f"arch.{k}": v.detach().clone() for k, v in strategy.arch.state_dict().items()},
            **{f"net.{k}": v.detach().clone() for k, v in strategy.net.state_dict().items()}}


def fit_steps() -> dict[str, torch.Tensor]:
    """One retraining epoch (3 steps of a global batch of 16) of a small CNN with BatchNorm."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    cfg = TrainConfig(epochs=1, batch_size=16, drop_path=0.0, augment=True)
    result = fit(model, tiny_data(), cfg, deadline=Deadline(None), device=torch.device("cpu"),
                 progress=False)
    out = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    out["val_auc"] = torch.tensor(result.best_metrics["auc"])
    out["val_loss"] = torch.tensor(result.best_metrics["loss"])
    out["train_loss"] = torch.tensor(result.history[0]["train_loss"])
    return out


def _equality_rank(rank: int, out: str) -> None:
    distributed.init_from_env(torch.device("cpu"))
    try:
        results = {name: search_steps(name, options) for name, options in CASES.items()}
        results["fit"] = fit_steps()
        torch.save(results, Path(out) / f"rank{rank}.pt")
        distributed.barrier()  # no rank leaves the group while another still uses it
    finally:
        distributed.teardown()


@pytest.fixture(scope="module")
def two_rank_steps(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("ddp")
    distributed.launch_local(_equality_rank, 2, (str(out),), threads=1)
    return (torch.load(out / "rank0.pt", weights_only=True),
            torch.load(out / "rank1.pt", weights_only=True))


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), \
                (k, float((a[k] - b[k]).abs().max()))
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_search_like_one_process(name: str, two_rank_steps) -> None:
    rank0, rank1 = two_rank_steps
    single = search_steps(name, CASES[name])
    if name not in ("spos", "proxyless"):  # no or few architecture weights move
        # the alphas start within 1e-2 of zero: they must have moved for the test to mean much
        assert max(float(v.abs().max()) for k, v in single.items()
                   if k.startswith("arch.")) > 0.05
    _assert_close(rank0[name], single)
    _assert_close(rank1[name], single)  # and the ranks agree with each other


def test_two_ranks_retrain_like_one_process(two_rank_steps) -> None:
    rank0, rank1 = two_rank_steps
    single = fit_steps()
    _assert_close(rank0["fit"], single)
    _assert_close(rank1["fit"], single)
    # BatchNorm running statistics come from the global batch
    assert not torch.equal(single["model.1.running_mean"], torch.zeros(4))


# ----------------------------------------------------------------------------- run folder


def _search(ctx_run: RunDir, writer: bool, resume: bool = False, stop_early: bool = False):
    strategy = _strategy("darts", batch_size=8, epochs=2)
    if stop_early:  # ends after epoch 0 as an interruption would: its checkpoint is saved
        strategy.extra_stop = lambda history: "test interruption"
    ctx = SearchContext(data=tiny_data(), space=DartsSpace(nodes=2), run=ctx_run,
                        deadline=Deadline(None), device=torch.device("cpu"), resume=resume,
                        recorder=Recorder(ctx_run, is_writer=writer))
    result = strategy.search(ctx)
    return result, {k: v.detach().clone() for k, v in strategy.arch.state_dict().items()}


def _recorder_rank(rank: int, folders: list[str], out: str) -> None:
    distributed.init_from_env(torch.device("cpu"))
    try:
        writer = distributed.is_writer()
        # 1. uninterrupted, each rank given its own folder: rank 1's must stay empty
        full, full_arch = _search(RunDir(folders[rank]), writer)
        # 2. stopped after epoch 0, then resumed by every rank from the shared folder
        shared = RunDir(folders[2])
        _search(shared, writer, stop_early=True)
        distributed.barrier()
        resumed, resumed_arch = _search(shared, writer, resume=True)
        torch.save({"full": full_arch, "resumed": resumed_arch, "full_epochs": full.epochs,
                    "resumed_epochs": resumed.epochs}, Path(out) / f"rank{rank}.pt")
        distributed.barrier()  # no rank leaves the group while another still uses it
    finally:
        distributed.teardown()


@pytest.fixture(scope="module")
def recorder_runs(tmp_path_factory) -> tuple[list[Path], dict, dict]:
    root = tmp_path_factory.mktemp("folders")
    folders = [root / "rank0", root / "rank1", root / "shared"]
    for f in folders:
        f.mkdir()
    distributed.launch_local(_recorder_rank, 2, ([str(f) for f in folders], str(root)),
                             threads=1)
    return (folders, torch.load(root / "rank0.pt", weights_only=True),
            torch.load(root / "rank1.pt", weights_only=True))


def test_only_rank_zero_writes(recorder_runs) -> None:
    folders, _, _ = recorder_runs
    assert list(folders[1].iterdir()) == []
    written = {p.relative_to(folders[0]).as_posix() for p in folders[0].rglob("*")
               if p.is_file()}
    assert written == {"search/history.jsonl", "search/alphas.jsonl", "search/state.pt"}
    assert len((folders[0] / "search/history.jsonl").read_text().splitlines()) == 2


def test_resume_restores_every_rank(recorder_runs) -> None:
    folders, rank0, rank1 = recorder_runs
    history = [json.loads(line) for line in
               (folders[2] / "search/history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [0, 1]
    for rank in (rank0, rank1):
        assert rank["resumed_epochs"] == rank["full_epochs"] == 2
        _assert_close(rank["resumed"], rank["full"])
    _assert_close(rank1["resumed"], rank0["resumed"])


# ----------------------------------------------------------------------------- command line


def test_bad_ddp_values_fail_cleanly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autonas.cli import app

    def invoke(*args: str):
        result = CliRunner().invoke(app, [str(a) for a in args], env=ENV)
        assert result.exit_code == 2, (result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        return " ".join(result.output.split())

    text = invoke("search", "--ddp", "0", "--out", tmp_path / "a", "--device", "cpu")
    assert "--ddp needs at least 1 process" in text
    text = invoke("search", "--ddp", "2", "--strategy", "enas", "--out", tmp_path / "b",
                  "--device", "cpu")
    assert "'enas'" in text and "cannot run data-parallel" in text
    assert "darts" in text and "gdas" in text  # names the ones that can
    assert not (tmp_path / "b").exists()  # refused before a run folder was made
    text = invoke("run", "--ddp", "4", "--set", "train.batch_size=2", "--out", tmp_path / "c",
                  "--device", "cpu")
    assert "train.batch_size 2 cannot be split across 4 processes" in text


def test_ddp_refuses_model_spaces() -> None:
    from autonas.config import RunConfig
    from autonas.errors import ConfigError
    from autonas.pipeline import check_data_parallel
    from autonas.spaces.model_space import ModelSpace, MutableConv2d, choice

    class Widths(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            self.conv = MutableConv2d(1, choice("c", [2, 4]), 3, padding="same")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean((2, 3))

    cfg = RunConfig.from_dict({"strategy": "darts"})
    with pytest.raises(ConfigError, match=r"'darts' on .* cannot run data-parallel"):
        check_data_parallel(cfg, ("search",), Widths())
    check_data_parallel(cfg, ("search",))  # DARTS on the cell space can


def test_shard_bounds_cover_the_batch() -> None:
    for n in (1, 7, 8, 9, 33):
        for world in (1, 2, 3):
            spans = [distributed.shard_bounds(n, world, r) for r in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(spans[i][1] == spans[i + 1][0] for i in range(world - 1))
            sizes = [b - a for a, b in spans]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.slow
def test_run_ddp_end_to_end(tmp_path: Path) -> None:
    """`autonas run --ddp 2`: search, retrain, evaluate and report from two processes."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_pipeline_cli import TINY, subprocess_env, write_npz

    npz = write_npz(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "autonas", "run", "--data", str(npz), *TINY, "--epochs", "2",
         "--retrain-epochs", "2", "--seed", "1", "--device", "cpu", "--out", str(out),
         "--ddp", "2"], capture_output=True, text=True, env={**subprocess_env(), **ENV},
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads((out / "status.json").read_text())
    assert all(status[p]["state"] == "done" for p in ("search", "retrain", "evaluate"))
    assert len((out / "search/history.jsonl").read_text().splitlines()) == 2
    assert len((out / "retrain/history.jsonl").read_text().splitlines()) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert (out / "report.html").is_file() and (out / "model.pt").is_file()
    log = (out / "run.log").read_text()
    assert log.count("search: darts on") == 1  # one writer
