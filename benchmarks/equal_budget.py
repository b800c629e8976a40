"""Does the search beat what a user gets without it, in the same minutes? One dataset, one
budget, several seeds, every method run as a whole process and timed as one.

Methods (``--methods``; each seed changes data order and initialisation for all of them):

- ``autonas``: the default ``autonas run``.
- ``random``: random search at equal budget, ``autonas run --strategy random``: the same
  space, search share, selection on validation and retrain; only the search differs.
- ``rsws``: random search with weight sharing (Li & Talwalkar 2019): the supernet trained
  with uniform path sampling (``--strategy spos``), then the best of ``--rsws-k`` random
  paths by validation score with the shared weights (no evolution), then the same retrain.
- ``random_arch``: one random genotype of the default space retrained by ``autonas train``
  for the whole budget (what skipping the search buys in retraining time).
- ``resnet18``: ResNet-18 with a 28 px stem trained for the whole budget
  (``baseline_resnet18.py``).

Prints one JSON document (also written under ``benchmarks/results/``): per method and seed
test accuracy/AUC and wall seconds of the whole process; mean and standard deviation; the
paired differences of ``autonas`` against every other method per seed, with an exact
two-sided sign test and a paired bootstrap p-value. A finished run (its folder holds
``metrics.json`` and ``wall.json``) is read, not re-run, so the table can grow across
sittings. ``--jobs 2`` runs two one-thread processes side by side, ``--jobs 1`` one
two-thread process at a time. Quote numbers only from a machine nobody else is using.

    python benchmarks/equal_budget.py --dataset breastmnist --budget 10m --seeds 0 1 2 3 4
    python benchmarks/equal_budget.py --dataset pneumoniamnist --budget 20m --jobs 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import AUTONAS, data_args, spread
from scipy.stats import binomtest

from autonas.spaces.darts import DartsSpace
from autonas.training.budget import parse_duration

HERE = Path(__file__).resolve().parent
METHODS = ("autonas", "random", "rsws", "random_arch", "resnet18")
BOOTSTRAP_DRAWS = 10_000


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform()}


def sh(cmd: list[str], threads: int, log: Path) -> None:
    env = {**os.environ, "AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")


def commands(method: str, args: argparse.Namespace, seed: int, out: Path) -> list[list[str]]:
    """The processes of one method and seed, in order; their wall time is the method's."""
    data = data_args(args.dataset)
    common = [*data, "--budget", args.budget, "--seed", str(seed), "--out", str(out / "run")]
    variant = shlex.split(args.run_args)
    if method == "autonas":
        return [[*AUTONAS, "run", *common, *variant]]
    if method == "random":
        return [[*AUTONAS, "run", *common, *variant, "--strategy", "random",
                 *shlex.split(args.random_args)]]
    if method == "rsws":
        return [[*AUTONAS, "run", *common, *variant, "--strategy", "spos", "--set",
                 "search.generations=0", "--set", f"search.population={args.rsws_k}"]]
    if method == "random_arch":
        arch = out / "arch.json"
        genotype = DartsSpace().random_genotype(random.Random(10_000 + seed))
        arch.write_text(json.dumps({"space": "darts", "arch": genotype.to_dict()}))
        return [[*AUTONAS, "train", "--arch", str(arch), *common],
                [*AUTONAS, "evaluate", str(out / "run")]]
    if method == "resnet18":
        return [[sys.executable, str(HERE / "baseline_resnet18.py"), *data, "--budget",
                 args.budget, "--seed", str(seed), "--json-out", str(out / "run" / "metrics.json")]]
    raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def read_result(out: Path) -> dict[str, Any] | None:
    metrics, wall = out / "run" / "metrics.json", out / "wall.json"
    if not (metrics.is_file() and wall.is_file()):
        return None
    m = json.loads(metrics.read_text())
    row = {"accuracy": m["test"]["accuracy"], "auc": m["test"]["auc"],
           **json.loads(wall.read_text())}
    result = out / "run" / "search" / "result.json"
    if result.is_file():
        searched = json.loads(result.read_text())
        row["fallback"] = searched.get("fallback")
        if "architecture" in searched:
            row["architecture_id"] = architecture_id(searched["architecture"])
    return row


def architecture_id(arch: Any) -> str:
    """A short fingerprint of a chosen architecture, to see where two methods chose alike."""
    return hashlib.sha1(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:12]


def run_one(method: str, seed: int, args: argparse.Namespace, root: Path,
            threads: int) -> dict[str, Any]:
    out = root / method / f"seed{seed}"
    done = read_result(out)
    if done is not None:
        return {"method": method, "seed": seed, "reused": True, **done}
    shutil.rmtree(out, ignore_errors=True)
    (out / "run").mkdir(parents=True) if method == "resnet18" else out.mkdir(parents=True)
    start = time.monotonic()
    for cmd in commands(method, args, seed, out):
        sh(cmd, threads, out / "log.txt")
    wall = time.monotonic() - start
    (out / "wall.json").write_text(json.dumps({"wall_s": wall, "threads": threads}))
    row = read_result(out)
    assert row is not None, f"{out} has no metrics.json after its run"
    return {"method": method, "seed": seed, "reused": False, **row}


def sign_test(diffs: list[float]) -> float | None:
    """Exact two-sided binomial test on the signs (ties dropped)."""
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    if wins + losses == 0:
        return None
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def bootstrap_p(diffs: list[float], seed: int = 0) -> float | None:
    """Two-sided paired bootstrap: twice the share of resampled mean differences on the
    other side of zero from the observed mean (capped at 1). None under 5 seeds: with two
    differences of one sign every resample agrees, and p = 0 would claim too much."""
    if len(diffs) < 5:
        return None
    rng = random.Random(seed)
    n = len(diffs)
    means = [sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(BOOTSTRAP_DRAWS)]
    below = sum(m <= 0 for m in means) / BOOTSTRAP_DRAWS
    above = sum(m >= 0 for m in means) / BOOTSTRAP_DRAWS
    return min(1.0, 2 * min(below, above))


def summarise(rows: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    by = {m: {r["seed"]: r for r in rows if r["method"] == m} for m in methods}
    summary = {m: {k: spread([r[k] for r in by[m].values() if r[k] is not None])
                   for k in ("accuracy", "auc", "wall_s")} for m in methods}
    paired: dict[str, Any] = {}
    if "autonas" in by:
        for other in methods:
            if other == "autonas":
                continue
            seeds = sorted(set(by["autonas"]) & set(by[other]))
            entry: dict[str, Any] = {"seeds": seeds}
            for k in ("accuracy", "auc"):
                diffs = [by["autonas"][s][k] - by[other][s][k] for s in seeds
                         if by["autonas"][s][k] is not None and by[other][s][k] is not None]
                entry[k] = {"per_seed": diffs, **spread(diffs), "sign_test_p": sign_test(diffs),
                            "bootstrap_p": bootstrap_p(diffs)}
            entry["same_architecture"] = [
                s for s in seeds if by["autonas"][s].get("architecture_id") is not None
                and by["autonas"][s].get("architecture_id") == by[other][s].get("architecture_id")]
            paired[f"autonas-{other}"] = entry
    return {"summary": summary, "paired": paired}


def mean_sd(stats: dict[str, float | None], digits: int = 3) -> str:
    mean, std = stats["mean"], stats["std"]
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ({std:.{digits}f})" if std is not None else "")


def markdown(document: dict[str, Any]) -> str:
    """The tables of a result document: runs per seed, then means and paired differences."""
    methods, seeds = document["methods"], document["seeds"]
    by = {(r["method"], r["seed"]): r for r in document["runs"]}
    lines = ["| method | " + " | ".join(f"seed {s} ACC / AUC" for s in seeds)
             + " | mean ACC (sd) | mean AUC (sd) | mean wall (s) |",
             "|---" * (len(seeds) + 4) + "|"]
    for m in methods:
        cells = [f"{by[m, s]['accuracy']:.3f} / {by[m, s]['auc']:.3f}" if (m, s) in by
                 else "not run" for s in seeds]
        stats = document["summary"][m]
        cells += [mean_sd(stats["accuracy"]), mean_sd(stats["auc"]), mean_sd(stats["wall_s"], 0)]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if document["paired"]:
        lines += ["", "| paired difference | seeds | ACC: per seed | mean | sign p | "
                  "bootstrap p | AUC: per seed | mean | sign p | bootstrap p |",
                  "|---" * 10 + "|"]
        for name, entry in document["paired"].items():
            row = [name, str(len(entry["seeds"]))]
            for k in ("accuracy", "auc"):
                e = entry[k]
                row += [" ".join(f"{d:+.3f}" for d in e["per_seed"]),
                        "-" if e["mean"] is None else f"{e['mean']:+.3f}",
                        "-" if e["sign_test_p"] is None else f"{e['sign_test_p']:.2f}",
                        "-" if e["bootstrap_p"] is None else f"{e['bootstrap_p']:.2f}"]
            lines.append("| " + " | ".join(row) + " |")
        for name, entry in document["paired"].items():
            if entry.get("same_architecture"):
                seeds_text = ", ".join(str(s) for s in entry["same_architecture"])
                lines += ["", f"{name}: both chose the same architecture on seed(s) "
                          f"{seeds_text}; there the difference comes from the retrain alone."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="breastmnist",
                   help="breastmnist, pneumoniamnist (the local copy) or a path to an .npz")
    p.add_argument("--budget", default="10m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--jobs", type=int, default=2, choices=(1, 2),
                   help="2: two one-thread processes side by side; 1: one two-thread process")
    p.add_argument("--threads", type=int, default=None, choices=(1, 2),
                   help="threads per process (default: 1 with --jobs 2, else 2); --jobs 1 "
                   "--threads 1 is for two invocations the caller runs side by side")
    p.add_argument("--rsws-k", type=int, default=16,
                   help="random paths scored with the shared weights (rsws)")
    p.add_argument("--run-args", default="",
                   help="options added to every `autonas run` (autonas, random, rsws), e.g. "
                   "'--space macro --strategy bohb' to test a candidate default")
    p.add_argument("--random-args", default="",
                   help="options added to the random method only, e.g. '--set "
                   "search.trial_epochs=9' to give its trials the searched strategy's epochs")
    p.add_argument("--markdown", action="store_true",
                   help="print the tables as Markdown instead of the JSON document")
    p.add_argument("--tag", default="", help="suffix of the result names, for variants")
    p.add_argument("--out-root", default=None, help="run folders (default: "
                   "benchmarks/results/equal_budget/DATASET-BUDGET[-TAG])")
    args = p.parse_args()
    seconds = parse_duration(args.budget)
    tag = f"{Path(args.dataset).stem}-{args.budget}" + (f"-{args.tag}" if args.tag else "")
    root = Path(args.out_root or HERE / "results" / "equal_budget" / tag)
    root.mkdir(parents=True, exist_ok=True)
    threads = args.threads or (1 if args.jobs == 2 else 2)
    if args.jobs * threads > 2:
        raise SystemExit("two one-thread processes or one two-thread process: this machine "
                         "has two cores")
    jobs = [(m, s) for s in args.seeds for m in args.methods]
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, m, s, args, root, threads): (m, s) for m, s in jobs}
        for future in concurrent.futures.as_completed(futures):
            try:
                rows.append(future.result())
            except RuntimeError as exc:
                failures.append(str(exc))
    rows.sort(key=lambda r: (args.methods.index(r["method"]), r["seed"]))
    document = {
        "benchmark": "equal_budget",
        "dataset": args.dataset,
        "budget": args.budget,
        "budget_s": seconds,
        "seeds": args.seeds,
        "methods": args.methods,
        "rsws_k": args.rsws_k,
        "run_args": args.run_args,
        "random_args": args.random_args,
        "jobs": args.jobs,
        "threads_per_job": threads,
        "machine": machine(),
        "runs": rows,
        **summarise(rows, args.methods),
        "failures": failures,
        "run_root": str(root),
    }
    text = json.dumps(document, indent=1)
    (HERE / "results" / f"equal_budget_{tag}.json").write_text(text + "\n")
    print(markdown(document) if args.markdown else text)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
