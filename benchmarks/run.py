"""`autonas run` end to end, next to the ResNet-18 baseline at the same budget.

Runs each configuration as its own process (`/usr/bin/time -v` gives its peak RSS) and
prints one JSON document: the whole process's wall time (timed around the subprocess, so
interpreter start, imports, data loading and the report count), wall time per phase, search
seconds per epoch, peak RSS, test ACC/AUC, and the baseline's numbers from the same sitting.

    python benchmarks/run.py                                   # BreastMNIST, 10 min, seed 0
    python benchmarks/run.py --dataset ../shared/data/medmnist/pneumoniamnist.recombined.npz \\
        --budget 20m
    python benchmarks/run.py --seeds 0 1 2 --no-baseline -- --set search.epochs=20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import AUTONAS

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> tuple[str, float, float]:
    """Run ``cmd`` under /usr/bin/time -v; (stdout, peak RSS in MB, wall seconds of the
    whole process)."""
    env = {**os.environ, "AUTONAS_NO_PROGRESS": "1"}
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                          env=env)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return proc.stdout, (int(match.group(1)) / 1024 if match else float("nan")), wall


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def autonas_run(dataset: str, budget: str, seed: int, strategy: str, out: Path,
                extra: list[str]) -> dict:
    cmd = [*AUTONAS, "run", "--dataset", dataset, "--budget", budget, "--seed", str(seed),
           "--strategy", strategy, "--out", str(out), *extra]
    _, rss, wall = timed(cmd)
    status = json.loads((out / "status.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    search = read_jsonl(out / "search" / "history.jsonl")
    retrain = read_jsonl(out / "retrain" / "history.jsonl")
    result = json.loads((out / "search" / "result.json").read_text())
    return {
        "seed": seed,
        "phase_seconds": {k: round(v.get("seconds", 0.0), 1) for k, v in status.items()},
        "total_seconds": round(wall, 1),
        "search_epochs": len(search),
        "search_stopped": result.get("stopped"),
        "search_seconds_per_epoch": (round(statistics.median(r["seconds"] for r in search), 2)
                                     if search else None),
        "final_alpha_entropy": search[-1]["entropy"] if search else None,
        "retrain_epochs": len(retrain),
        "params": metrics["params"],
        "peak_rss_mb": round(rss),
        "val": {k: metrics["val"][k] for k in ("accuracy", "auc", "loss")},
        "test": {k: metrics["test"][k] for k in ("accuracy", "auc", "loss")},
        "architecture": result.get("architecture"),
        "run_dir": str(out),
    }


def baseline(dataset: str, budget: str, seed: int) -> dict:
    out, rss, wall = timed([sys.executable, str(HERE / "baseline_resnet18.py"), "--dataset",
                            dataset, "--budget", budget, "--seed", str(seed)])
    result = json.loads(out)
    result["peak_rss_mb"] = round(rss)
    result["total_seconds"] = round(wall, 1)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--budget", default="10m")
    p.add_argument("--strategy", default="darts")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--out-root", default=None, help="keep run folders here")
    p.add_argument("extra", nargs="*", help="extra `autonas run` arguments (after --)")
    args = p.parse_args()
    root = Path(args.out_root or tempfile.mkdtemp(prefix="autonas-bench-"))
    runs = []
    for seed in args.seeds:
        out = root / f"{Path(args.dataset).stem}-{args.strategy}-s{seed}"
        runs.append(autonas_run(args.dataset, args.budget, seed, args.strategy, out, args.extra))
    report = {"benchmark": "autonas_run", "dataset": args.dataset, "budget": args.budget,
              "strategy": args.strategy, "extra_args": args.extra, "runs": runs}
    if len(runs) > 1:
        report["test_mean"] = {k: statistics.mean(r["test"][k] for r in runs)
                               for k in ("accuracy", "auc")}
    if not args.no_baseline:
        report["baseline_resnet18"] = [baseline(args.dataset, args.budget, s) for s in args.seeds]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
