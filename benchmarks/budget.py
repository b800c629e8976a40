"""Does `--budget` hold? The whole `autonas run` process, timed from outside.

For each strategy and budget, runs `autonas run` as a subprocess and times it with
`time.monotonic()` around the subprocess: interpreter start, imports, data loading, search,
retraining, evaluation and the written report all count. Prints one JSON line per run
(budget, strategy, wall seconds, wall / budget, whether it ended within budget x 1.03 + 1 s,
per-phase seconds from status.json) and a summary at the end. Finished runs are appended to
a results file and reused when the script is run again, so an interrupted sweep continues.
Run it on a quiet machine: timings taken next to other work say little.

    python benchmarks/budget.py                                  # every strategy, 30 s and 2 min
    python benchmarks/budget.py --budgets 30s 2m 10m
    python benchmarks/budget.py --strategies darts random --budgets 30s
    python benchmarks/budget.py --classes 200 --budgets 30s      # synthetic 200-class data
    python benchmarks/budget.py --strategies random -- --set train.batch_size=32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import AUTONAS, data_args

HERE = Path(__file__).resolve().parent
SLACK_RATIO = 1.03
SLACK_SECONDS = 1.0
"""The promise: the whole process ends within budget x SLACK_RATIO + SLACK_SECONDS."""


def parse_seconds(text: str) -> float:
    from autonas.training.budget import parse_duration

    seconds = parse_duration(text)
    if seconds is None:
        raise SystemExit(f"--budgets needs finite durations, got {text!r}")
    return seconds


def synthetic_npz(path: Path, classes: int, *, train_per_class: int = 20,
                  eval_per_class: int = 5, size: int = 28, seed: int = 0) -> Path:
    """A MedMNIST-layout .npz with ``classes`` classes of learnable grey images (each class
    a brightness and a stripe period, plus noise): many classes, small files."""
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    grid = np.arange(size)[None, :]
    arrays: dict[str, np.ndarray] = {}
    for split, per in (("train", train_per_class), ("val", eval_per_class),
                       ("test", eval_per_class)):
        labels = np.repeat(np.arange(classes), per)
        level = 40 + 170 * (labels % 16) / 15
        period = 2 + (labels // 16) % 13
        stripes = 30 * np.sin(2 * np.pi * grid / period[:, None])[:, None, :]
        images = level[:, None, None] + stripes + rng.normal(0, 12, (len(labels), size, size))
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def all_strategies() -> list[str]:
    from autonas.strategies import available_strategies

    return list(available_strategies())


def run_key(dataset: str, strategy: str, budget: float, seed: int, extra: list[str]) -> str:
    return json.dumps([dataset, strategy, budget, seed, extra])


def load_results(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else []


def save_results(path: Path, results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


def one_run(dataset: str, strategy: str, budget: float, seed: int, out: Path,
            extra: list[str]) -> dict[str, Any]:
    cmd = [*AUTONAS, "run", *data_args(dataset), "--strategy", strategy,
           "--budget", f"{budget:g}", "--seed", str(seed), "--out", str(out), *extra]
    env = {**os.environ, "AUTONAS_NO_PROGRESS": "1"}
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    limit = budget * SLACK_RATIO + SLACK_SECONDS
    status_file = out / "status.json"
    status = json.loads(status_file.read_text()) if status_file.is_file() else {}
    metrics_file = out / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    report = out / "report.html"
    return {
        "dataset": dataset, "strategy": strategy, "budget": budget, "seed": seed,
        "extra_args": extra, "wall_seconds": round(wall, 2),
        "ratio": round(wall / budget, 3), "limit_seconds": round(limit, 2),
        "within": wall <= limit, "returncode": proc.returncode,
        "phase_seconds": {k: round(v.get("seconds", 0.0), 2) for k, v in status.items()
                          if isinstance(v, dict)},
        "report_bytes": report.stat().st_size if report.is_file() else None,
        "test_auc": (metrics.get("test") or {}).get("auc"),
        "warnings": [w.get("code") for w in metrics.get("warnings") or []],
        "error": proc.stderr[-1500:] if proc.returncode else None,
        "run_dir": str(out),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budgets", nargs="+", default=["30s", "2m"])
    p.add_argument("--strategies", nargs="+", default=None, help="default: all of them")
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--classes", type=int, default=None,
                   help="use a synthetic dataset with this many classes instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=HERE / "results" / "budget.json",
                   help="JSON list the runs are appended to (finished ones are reused)")
    p.add_argument("--out-root", type=Path, default=None, help="keep run folders here")
    p.add_argument("extra", nargs="*", help="extra `autonas run` arguments (after --)")
    args = p.parse_args()
    root = args.out_root or Path(tempfile.mkdtemp(prefix="autonas-budget-"))
    dataset = args.dataset
    if args.classes is not None:
        dataset = str(synthetic_npz(root / f"synthetic-{args.classes}.npz", args.classes,
                                    seed=args.seed))
        label = f"synthetic-{args.classes}"
    else:
        label = dataset
    strategies = args.strategies or all_strategies()
    results = load_results(args.results)
    done = {r["key"]: r for r in results if r.get("returncode") == 0}
    summary = []
    for budget in map(parse_seconds, args.budgets):
        for strategy in strategies:
            key = run_key(label, strategy, budget, args.seed, args.extra)
            if key in done:
                row = done[key]
                print(json.dumps({**row, "reused": True}), flush=True)
            else:
                out = root / f"{Path(label).stem}-{strategy}-{budget:g}s-s{args.seed}"
                if out.exists() and any(out.iterdir()):
                    out = Path(tempfile.mkdtemp(prefix=f"{out.name}-", dir=root))
                row = {"key": key, **one_run(dataset, strategy, budget, args.seed, out,
                                             args.extra)}
                row["dataset"] = label
                results = [r for r in results if r.get("key") != key] + [row]
                save_results(args.results, results)
                print(json.dumps(row), flush=True)
            summary.append({k: row[k] for k in ("strategy", "budget", "wall_seconds", "ratio",
                                                "within", "returncode")})
    print(json.dumps({"benchmark": "budget", "dataset": label, "results_file":
                      str(args.results), "runs": summary,
                      "all_within": all(r["within"] and r["returncode"] == 0
                                        for r in summary)}, indent=1))


if __name__ == "__main__":
    main()
