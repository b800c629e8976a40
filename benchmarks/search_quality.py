"""Does the search really choose? Searched genotypes against random ones of the same space.

1. `autonas search` with several seeds: the final alpha entropy (1.0 = uniform) says
   whether the architecture weights moved, and pairwise edge agreement says whether the
   seeds found the same cells.
2. Every searched genotype and N random genotypes of the same space are retrained for the
   same number of epochs with the same training seed, then evaluated on the test split.

Searches and retrains run for fixed epochs (not wall-clock budgets), so the comparison does
not depend on how busy the machine is; ``--jobs 2`` runs two at a time, one thread each.
Prints one JSON document.

    python benchmarks/search_quality.py --seeds 0 1 2 --random 5 --search-epochs 25 \\
        --retrain-epochs 30 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import AUTONAS

from autonas.spaces.darts import DartsSpace
from autonas.spaces.genotype import Genotype

THREADS: dict[str, str] = {}


def sh(*cmd: str) -> None:
    env = {**os.environ, "AUTONAS_NO_PROGRESS": "1", **THREADS}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def edges(genotype: Genotype) -> set[tuple]:
    return {(kind, node, op, j)
            for kind, cell in (("normal", genotype.normal), ("reduce", genotype.reduce))
            for node, node_edges in enumerate(cell.nodes) for op, j in node_edges}


def agreement(a: Genotype, b: Genotype) -> float:
    """Share of edges (node, input, op) two genotypes have in common."""
    ea, eb = edges(a), edges(b)
    return len(ea & eb) / max(len(ea), 1)


def retrain(arch_file: Path, dataset: str, epochs: int, out: Path) -> dict:
    if (out / "metrics.json").is_file():  # a finished retrain is reused on a rerun
        return read_test(out)
    shutil.rmtree(out, ignore_errors=True)
    sh(*AUTONAS, "train", "--arch", str(arch_file), "--dataset", dataset, "--budget", "none",
       "--epochs", str(epochs), "--seed", "0", "--out", str(out))
    sh(*AUTONAS, "evaluate", str(out))
    return read_test(out)


def read_test(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics["test"][k] for k in ("accuracy", "auc")} | {"params": metrics["params"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--random", type=int, default=5)
    p.add_argument("--search-epochs", type=int, default=25)
    p.add_argument("--retrain-epochs", type=int, default=30)
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each gets one thread "
                   "when more than one)")
    p.add_argument("--strategy", default="darts")
    p.add_argument("--out-root", default=None)
    p.add_argument("extra", nargs="*", help="extra `autonas search` arguments (after --)")
    args = p.parse_args()
    root = Path(args.out_root or tempfile.mkdtemp(prefix="autonas-quality-"))

    if args.jobs > 1:
        THREADS["AUTONAS_THREADS"] = "1"
    pool = concurrent.futures.ThreadPoolExecutor(args.jobs)

    def search(seed: int) -> tuple[Genotype, dict]:
        out = root / f"search-s{seed}"
        if not (out / "genotype.json").is_file():  # a finished search is reused on a rerun
            shutil.rmtree(out, ignore_errors=True)
            sh(*AUTONAS, "search", "--dataset", args.dataset, "--budget", "none", "--epochs",
               str(args.search_epochs), "--strategy", args.strategy, "--seed", str(seed),
               "--out", str(out), *args.extra)
        lines = (out / "search" / "history.jsonl").read_text().splitlines()
        history = [json.loads(line) for line in lines]
        return (Genotype.load(out / "genotype.json"),
                {"final": history[-1]["entropy"], "epochs": len(history)})

    found = dict(zip(args.seeds, pool.map(search, args.seeds), strict=True))
    searched = {seed: g for seed, (g, _) in found.items()}
    entropy = {seed: e for seed, (_, e) in found.items()}
    pairs = {f"{a}-{b}": agreement(searched[a], searched[b])
             for a, b in itertools.combinations(args.seeds, 2)}
    space = DartsSpace()
    randoms = [space.random_genotype(random.Random(1000 + i)) for i in range(args.random)]

    jobs = [("searched", key, g) for key, g in searched.items()]
    jobs += [("random", key, g) for key, g in enumerate(randoms)]

    def train_one(job: tuple[str, int, Genotype]) -> dict:
        kind, key, genotype = job
        arch_file = root / f"{kind}-{key}.json"
        genotype.save(arch_file)
        row = retrain(arch_file, args.dataset, args.retrain_epochs, root / f"train-{kind}-{key}")
        return {"kind": kind, "id": key, "genotype": str(genotype), **row}

    results: dict[str, list[dict]] = {"searched": [], "random": []}
    for row in pool.map(train_one, jobs):
        results[row.pop("kind")].append(row)

    def mean(rows: list[dict], k: str) -> float:
        return statistics.mean(r[k] for r in rows)

    print(json.dumps({
        "benchmark": "search_quality",
        "dataset": args.dataset,
        "strategy": args.strategy,
        "search_epochs": args.search_epochs,
        "retrain_epochs": args.retrain_epochs,
        "threads_per_run": THREADS.get("AUTONAS_THREADS", "default"),
        "alpha_entropy": entropy,
        "edge_agreement": {"pairs": pairs,
                           "mean": statistics.mean(pairs.values()) if pairs else None},
        "searched": results["searched"],
        "random": results["random"],
        "summary": {kind: {"test_auc_mean": mean(rows, "auc"),
                           "test_acc_mean": mean(rows, "accuracy")}
                    for kind, rows in results.items()},
        "run_root": str(root),
    }, indent=1))


if __name__ == "__main__":
    main()
