"""Many workers on one multi-trial search, through the study's storage (PostgreSQL).

The coordinator (``autonas run/search --storage URL --workers N``) writes what a worker
needs into the study's user attributes: the run's config (data source, space, strategy
and its options, seed) and the shared deadline as wall-clock time. A worker then needs
only the URL and the study name (``autonas worker --storage URL --study NAME``, from any
machine that reaches the database and the data). Workers write nothing but the study; the
coordinator keeps the run folder: it records every finished trial, and when the workers
are done it re-runs what dead workers left, then retrains, evaluates and reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from ..errors import ConfigError
from ..recorder import Recorder
from ..run import RunDir, get_logger
from ..training.budget import Deadline
from .study import make_storage, masked, no_experimental_warnings

if TYPE_CHECKING:
    from ..strategies.base import SearchContext
    from .runner import TrialRunner

JOB = "autonas_job"
"""Study user attribute holding what a worker needs to join."""
POLL_SECONDS = 1.0


def _absolute(text: str) -> str:
    """A path the coordinator sees made absolute, so local workers find it from anywhere
    (``path.py:Class`` user spaces too)."""
    path, sep, rest = text.partition(":") if text.count(":") == 1 else (text, "", "")
    return str(Path(path).resolve()) + sep + rest if Path(path).exists() else text


def write_job(study: optuna.Study, ctx: SearchContext, url: str) -> None:
    if ctx.config is None:
        raise ConfigError("workers need the run's config to rebuild the data and the space; "
                          "start them from the command line (autonas run/search --workers N), "
                          "not with in-memory data")
    config = dict(ctx.config)
    config["dataset"] = _absolute(str(config.get("dataset", "")))
    config["space"] = _absolute(str(config.get("space", "")))
    remaining = ctx.deadline.remaining()
    deadline = None if remaining == float("inf") else time.time() + remaining
    study.set_user_attr(JOB, {"config": config, "deadline": deadline, "seed": ctx.seed})


def read_job(study: optuna.Study, url: str) -> dict[str, Any]:
    job = study.user_attrs.get(JOB)
    if job is None:
        raise ConfigError(f"study {study.study_name!r} in {masked(url)} was not started by "
                          "autonas run/search --workers (it holds no job description); start "
                          "the search with --storage URL first")
    return job


def spawn(n: int, url: str, study_name: str, logs: Path, device: str) -> list[
        tuple[subprocess.Popen, Path]]:
    """``n`` local worker processes, each logging to its own file."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(n):
        log = logs / f"worker-{i}.log"
        with log.open("a") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "autonas.cli", "worker", "--storage", url, "--study",
                 study_name, "--device", device],
                stdout=f, stderr=subprocess.STDOUT, env={**os.environ,
                                                         "AUTONAS_NO_PROGRESS": "1"})
        procs.append((proc, log))
    return procs


def coordinate(n: int, url: str, study_name: str, run: RunDir, runner: TrialRunner,
               on_row: Callable[[dict[str, Any]], None]) -> None:
    """Start ``n`` local workers and record their trials until they are all done."""
    procs = spawn(n, url, study_name, run.file("search", "workers"), _device(run, "auto"))
    get_logger().info("search: %d workers started (logs in %s)", n,
                      run.file("search", "workers"))
    seen = len(runner.rows)
    try:
        while any(p.poll() is None for p, _ in procs):
            time.sleep(POLL_SECONDS)
            runner.refresh()
            if len(runner.rows) != seen:
                for row in runner.rows[seen:]:
                    on_row(row)
                seen = len(runner.rows)
    except BaseException:
        for p, _ in procs:  # Ctrl-C: stop the local workers; their trials re-run on resume
            p.terminate()
        for p, _ in procs:
            p.wait()
        raise
    failed = [(p, log) for p, log in procs if p.returncode != 0]
    if failed and len(failed) == len(procs) and not runner.rows:
        tail = failed[0][1].read_text()[-1500:]
        raise ConfigError(f"every worker failed; worker 0 said:\n{tail}")
    for p, log in failed:
        get_logger().warning("search: a worker exited with code %s (log: %s); its trial, "
                             "if any, is re-run", p.returncode, log)


def _device(run: RunDir, fallback: str) -> str:
    try:
        return str(run.read_yaml("config.yaml").get("device", fallback))
    except Exception:
        return fallback


def join(url: str, study_name: str, device: str = "auto", wait: float = 120.0
         ) -> dict[str, Any]:
    """Run one worker on the study until the search is over (waiting up to ``wait``
    seconds for the coordinator to create it); returns a summary."""
    from ..config import RunConfig
    from ..pipeline import load_data
    from ..spaces import make_space
    from ..strategies import SearchContext, make_strategy
    from ..strategies.multitrial import MultiTrialStrategy
    from ..training.device import configure_threads, resolve_device, seed_everything
    from .search import make_runner, open_search
    from .study import exclusive_sqlite

    probe = make_storage(url)
    study, waited_until = None, time.monotonic() + wait
    while True:  # a worker started with the coordinator waits for it to write the study
        try:
            with no_experimental_warnings():
                study = optuna.load_study(study_name=study_name, storage=probe)
            if JOB in study.user_attrs or time.monotonic() >= waited_until:
                break
        except KeyError:
            if time.monotonic() >= waited_until:
                raise ConfigError(f"no study named {study_name!r} in {masked(url)} after "
                                  f"{wait:.0f} s; start the search first (autonas run ... "
                                  "--storage URL --workers N), or wait longer (--wait)"
                                  ) from None
        time.sleep(POLL_SECONDS)
    job = read_job(study, url)
    cfg = RunConfig.from_dict(job["config"])
    dev = resolve_device(device if device != "auto" else cfg.device)
    configure_threads(cfg.threads)
    seed_everything(cfg.seed)
    space = make_space(cfg.space, **cfg.space_options)
    strategy = make_strategy(cfg.strategy, space, **cfg.search)
    if not isinstance(strategy, MultiTrialStrategy):
        raise ConfigError(f"study {study_name!r} runs {cfg.strategy!r}, not a multi-trial "
                          "strategy: it has no trials for workers")
    strategy.storage = url
    data = load_data(cfg)
    remaining = None if job["deadline"] is None else job["deadline"] - time.time()
    deadline = Deadline.after(remaining)
    ctx = SearchContext(data=data, space=space, run=None, deadline=deadline,  # type: ignore[arg-type]
                        device=dev, seed=int(job["seed"]), resume=True)
    strategy.setup(ctx)
    study, storage = open_search(strategy, url, study_name, resume=True)
    runner = make_runner(strategy, ctx, study, storage, url, Recorder(None))
    get_logger().info("worker: joined study %r in %s (%s on %s)", study_name, masked(url),
                      cfg.strategy, cfg.space)
    done = 0

    def count(_row: dict[str, Any]) -> None:
        nonlocal done
        done += 1

    with exclusive_sqlite(url):
        stopped = runner.work(on_row=count)
    get_logger().info("worker: %d trials run here; the search %s", done, stopped)
    return {"trials": done, "stopped": stopped}
