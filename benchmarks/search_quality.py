"""Does the search really choose? Searched genotypes against random ones of the same space.

1. `autonas search` with several seeds: the final alpha entropy (1.0 = uniform) says
   whether the architecture weights moved, and pairwise edge agreement says whether the
   seeds found the same cells.
2. Every searched genotype and N random genotypes of the same space are retrained at the
   same budget with the same training seed, then evaluated on the test split.

Prints one JSON document.

    python benchmarks/search_quality.py --seeds 0 1 2 3 4 --random 5 --search-budget 4m \\
        --retrain-budget 5m
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import tempfile
from pathlib import Path

from autonas.spaces.darts import DartsSpace
from autonas.spaces.genotype import Genotype


def sh(*cmd: str) -> None:
    env = {**os.environ, "AUTONAS_NO_PROGRESS": "1"}
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


def retrain(arch_file: Path, dataset: str, budget: str, out: Path, extra: list[str]) -> dict:
    sh("autonas", "train", "--arch", str(arch_file), "--dataset", dataset, "--budget", budget,
       "--seed", "0", "--out", str(out), *extra)
    sh("autonas", "evaluate", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics["test"][k] for k in ("accuracy", "auc")} | {"params": metrics["params"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--random", type=int, default=5)
    p.add_argument("--search-budget", default="4m")
    p.add_argument("--retrain-budget", default="5m")
    p.add_argument("--strategy", default="darts")
    p.add_argument("--out-root", default=None)
    p.add_argument("extra", nargs="*", help="extra `autonas search` arguments (after --)")
    args = p.parse_args()
    root = Path(args.out_root or tempfile.mkdtemp(prefix="autonas-quality-"))

    searched: dict[int, Genotype] = {}
    entropy: dict[int, dict] = {}
    for seed in args.seeds:
        out = root / f"search-s{seed}"
        sh("autonas", "search", "--dataset", args.dataset, "--budget", args.search_budget,
           "--strategy", args.strategy, "--seed", str(seed), "--out", str(out), *args.extra)
        searched[seed] = Genotype.load(out / "genotype.json")
        history = [json.loads(x) for x in (out / "search" / "history.jsonl").read_text().split()]
        entropy[seed] = {"final": history[-1]["entropy"], "epochs": len(history)}

    pairs = {f"{a}-{b}": agreement(searched[a], searched[b])
             for a, b in itertools.combinations(args.seeds, 2)}
    space = DartsSpace()
    randoms = [space.random_genotype(random.Random(1000 + i)) for i in range(args.random)]

    results: dict[str, list[dict]] = {"searched": [], "random": []}
    for kind, genotypes in (("searched", list(searched.items())),
                            ("random", list(enumerate(randoms)))):
        for key, genotype in genotypes:
            arch_file = root / f"{kind}-{key}.json"
            genotype.save(arch_file)
            row = retrain(arch_file, args.dataset, args.retrain_budget,
                          root / f"train-{kind}-{key}", [])
            results[kind].append({"id": key, "genotype": str(genotype), **row})

    def mean(rows: list[dict], k: str) -> float:
        return statistics.mean(r[k] for r in rows)

    print(json.dumps({
        "benchmark": "search_quality",
        "dataset": args.dataset,
        "strategy": args.strategy,
        "search_budget": args.search_budget,
        "retrain_budget": args.retrain_budget,
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
