"""Scaling out: multi-trial search throughput (trials per minute) with 1, 2, ... workers on
one study, each worker on one thread, on a throw-away PostgreSQL cluster this script starts
and stops itself. Prints JSON.

    python benchmarks/scale.py --workers 1 2 --seconds 300

Each setting runs ``autonas search --storage URL --workers N`` on a fresh database with a
tiny trial recipe on a large space (the workers never run out of new architectures) and
counts the trials finished in the steady state: from the first trial's start to the last
trial's end, as the study records them (worker start-up is left out, and reported apart).

Sections: ``SECTIONS`` maps a name to a function (args -> JSON-able dict); ``multitrial``
is this file's. Another measurement of scaling (e.g. the step time of distributed
training) registers its own function there and is selected with ``--sections``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from common import AUTONAS, data_args

from autonas.trials.pgcluster import PostgresCluster
from autonas.trials.study import storage_url

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "AUTONAS_THREADS": "1",
              "AUTONAS_NO_PROGRESS": "1"}


def search_command(args: argparse.Namespace, url: str, workers: int, out: Path) -> list[str]:
    return [*AUTONAS, "search", *data_args(args.dataset), "--space", args.space,
            "--strategy", "random", "--budget", f"{args.seconds}s", "--storage", url,
            "--workers", str(workers), "--out", str(out), "--device", "cpu",
            "--seed", str(args.seed),
            "--set", f"search.trial_epochs={args.trial_epochs}",
            "--set", f"search.data_fraction={args.data_fraction}",
            "--set", f"search.trial_channels={args.trial_channels}",
            "--set", f"search.trial_layers={args.trial_layers}"]


def throughput(url: str, study_name: str) -> dict[str, Any]:
    """Trials per minute over the steady state the study records."""
    study = optuna.load_study(study_name=study_name, storage=storage_url(url))
    done = [t for t in study.trials if t.datetime_complete is not None
            and t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return {"complete": 0, "trials_per_minute": None}
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    span = (end - start).total_seconds()
    return {"complete": len(done), "all_trials": len(study.trials), "steady_seconds": span,
            "trials_per_minute": 60.0 * len(done) / span if span > 0 else None,
            "mean_trial_seconds": sum((t.datetime_complete - t.datetime_start).total_seconds()
                                      for t in done) / len(done)}


def multitrial_scaling(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, **ONE_THREAD}
    results = []
    with PostgresCluster() as pg, tempfile.TemporaryDirectory() as tmp:
        import psycopg

        for workers in args.workers:
            database = f"scale_{workers}"
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {database}")
                conn.execute(f"CREATE DATABASE {database}")
            url = pg.url.rsplit("/", 1)[0] + "/" + database
            out = Path(tmp) / f"workers-{workers}"
            started = time.monotonic()
            proc = subprocess.run(search_command(args, url, workers, out), env=env,
                                  capture_output=True, text=True)
            wall = time.monotonic() - started
            row: dict[str, Any] = {"workers": workers, "wall_seconds": wall,
                                   "returncode": proc.returncode}
            if proc.returncode != 0:
                row["error"] = (proc.stdout + proc.stderr)[-2000:]
            else:
                row.update(throughput(url, out.name))
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    base = next((r["trials_per_minute"] for r in results
                 if r["workers"] == 1 and r.get("trials_per_minute")), None)
    for r in results:
        if base and r.get("trials_per_minute"):
            r["speedup"] = r["trials_per_minute"] / base
    return {"space": args.space, "dataset": args.dataset, "trial_epochs": args.trial_epochs,
            "data_fraction": args.data_fraction, "seconds": args.seconds,
            "threads_per_worker": 1, "runs": results}


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "multitrial": multitrial_scaling,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=["multitrial"],
                        choices=sorted(SECTIONS))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=int, default=300,
                        help="wall-clock budget of each setting's search")
    parser.add_argument("--dataset", default="breastmnist")
    parser.add_argument("--space", default="darts")
    parser.add_argument("--trial-epochs", type=int, default=1)
    parser.add_argument("--data-fraction", type=float, default=0.3)
    parser.add_argument("--trial-channels", type=int, default=4)
    parser.add_argument("--trial-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    report = {name: SECTIONS[name](args) for name in args.sections}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
