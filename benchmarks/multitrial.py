"""Seed 000's space searched by one-shot and multi-trial strategies at equal budget.

For every (dataset, strategy) pair, one `autonas run` (search, retrain, evaluate) with the
same --budget and seed, as a subprocess; prints one JSON document with wall time, trials,
the best architecture and test ACC/AUC next to seed 000's NNI numbers.

    python benchmarks/multitrial.py --space medmnist-cnn --budget 20m \\
        --strategies darts evolution tpe --out benchmarks/results/multitrial

    python benchmarks/multitrial.py --smoke        # minutes on a CPU: checks the plumbing
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import AUTONAS, data_args

ROOT = Path(__file__).resolve().parents[1]
# Seed 000 (NNI DARTS on the same space): test accuracy / AUC, copied from the seed, not run here.
NNI = {"pneumoniamnist": {"accuracy": 0.851, "auc": 0.934},
       "breastmnist": {"accuracy": 0.801, "auc": 0.828}}
ONE_SHOT = {"darts", "darts2", "gdas", "enas", "spos", "random-oneshot",
            "proxyless"}  # search epochs, not trials
SMOKE = ["--set", "search.trial_epochs=1", "--set", "search.data_fraction=0.2",
         "--set", "train.epochs=1"]


def run_one(dataset: str, strategy: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = [*AUTONAS, "run", *data_args(dataset), "--space",
           args.space, "--strategy", strategy, "--budget", args.budget, "--seed",
           str(args.seed), "--device", args.device, "--out", str(out)]
    if strategy not in ONE_SHOT and args.max_trials is not None:
        cmd += ["--max-trials", str(args.max_trials)]
    if args.smoke:
        cmd += SMOKE if strategy not in ONE_SHOT else ["--set", "search.epochs=1",
                                                       "--set", "train.epochs=1"]
    for item in args.set or []:
        cmd += ["--set", item]
    env = {**os.environ, "AUTONAS_NO_PROGRESS": "1"}
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    row: dict = {"dataset": Path(dataset).stem.split(".")[0], "strategy": strategy,
                 "space": args.space, "budget": args.budget, "seed": args.seed,
                 "wall_seconds": round(wall, 1), "command": " ".join(cmd)}
    if proc.returncode != 0:
        return {**row, "error": proc.stderr[-2000:] or proc.stdout[-2000:]}
    metrics = json.loads((out / "metrics.json").read_text())
    result = json.loads((out / "search" / "result.json").read_text())
    status = json.loads((out / "status.json").read_text())
    row.update(
        trials=result.get("n_trials"),
        trial_states=result.get("states"),
        search_epochs=result["epochs"] if strategy in ONE_SHOT else None,
        stopped=result["stopped"],
        best_arch=result["architecture"],
        params=metrics["params"],
        phase_seconds={p: round(s.get("seconds", 0.0), 1) for p, s in status.items()},
        val={k: metrics["val"][k] for k in ("accuracy", "auc")},
        test={k: metrics["test"][k] for k in ("accuracy", "auc")},
        nni_seed_000=NNI.get(row["dataset"]),
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="medmnist-cnn", help="space to search (name or "
                   "file.py:Class)")
    p.add_argument("--datasets", nargs="+", default=["breastmnist", "pneumoniamnist"],
                   help="MedMNIST flags or .npz files")
    p.add_argument("--strategies", nargs="+", default=["darts", "evolution", "tpe"])
    p.add_argument("--budget", default="20m", help="per run: search + retrain + evaluation")
    p.add_argument("--max-trials", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", help="extra --set KEY=VALUE for every run")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multitrial")
    p.add_argument("--smoke", action="store_true", help="tiny settings: checks that every "
                   "configuration runs, says nothing about quality")
    args = p.parse_args()
    if args.smoke:
        args.budget = "90s" if args.budget == "20m" else args.budget
        args.max_trials = args.max_trials or 2
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for dataset in args.datasets:
        for strategy in args.strategies:
            name = f"{Path(dataset).stem.split('.')[0]}-{strategy}-{stamp}"
            rows.append(run_one(dataset, strategy, args, args.out / name))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report = {"space": args.space, "budget": args.budget, "seed": args.seed,
              "smoke": args.smoke, "runs": rows}
    (args.out / f"summary-{stamp}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
