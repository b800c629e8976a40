"""Every DARTS-family strategy on the same data at the same CPU budget: one table.

Each (strategy, dataset) pair is one ``autonas run`` (search, retrain, evaluate) in its own
process, so its peak RSS is its own; the numbers come from the run folder it writes
(``status.json``, ``search/result.json``, ``genotype.json``, ``metrics.json``).

    python benchmarks/darts_family.py                       # 8 strategies x 2 datasets, 10m each
    python benchmarks/darts_family.py --budget 20m --seeds 0 1 2 --out results.json
    python benchmarks/darts_family.py --strategies darts gdas --datasets breastmnist \\
        --budget 60 --set search.channels=4 --set network.layers=2     # smoke test

Columns: search seconds, peak RSS of the whole run above that of the imports alone
(torch and the CLI take most of a GB before any work), skip connections in the searched
normal cell, how the search ended, test accuracy and AUC after retraining.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import PNEUMONIA, data_args

STRATEGIES = ["darts", "darts2", "pc-darts", "p-darts", "darts-minus", "gdas", "enas", "spos"]
DATASETS = ["breastmnist", str(PNEUMONIA)]
SKIPS = {"skip_connect", "identity"}


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(rss_file: str, argv: list[str]) -> None:
    """Run the autonas CLI in this process, then record the process's peak RSS."""
    from autonas.cli import app

    code = 0
    try:
        app(argv, prog_name="autonas")
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        Path(rss_file).write_text(json.dumps({"peak_rss_mb": peak_rss_mb()}))
    sys.exit(code)


def imports_rss_mb(runs: Path) -> float:
    """Peak RSS of a process that only loads the CLI (``autonas strategies``)."""
    rss_file = runs / "imports.rss.json"
    subprocess.run([sys.executable, __file__, "--child", str(rss_file), "--", "strategies"],
                   capture_output=True, check=True)
    return json.loads(rss_file.read_text())["peak_rss_mb"]


def run_one(strategy: str, dataset: str, seed: int, args: argparse.Namespace) -> dict:
    name = f"{Path(dataset).stem.split('.')[0]}-{strategy}-s{seed}"
    out = Path(args.runs) / name
    rss_file = Path(args.runs) / f"{name}.rss.json"
    cli = ["run", *data_args(dataset), "--strategy", strategy, "--budget", args.budget,
           "--seed", str(seed), "--device", args.device, "--out", str(out)]
    for item in args.set or []:
        cli += ["--set", item]
    env = {**os.environ, "AUTONAS_NO_PROGRESS": "1"}
    if args.threads:
        env["AUTONAS_THREADS"] = str(args.threads)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--child", str(rss_file), "--", *cli],
                          capture_output=True, text=True, env=env)
    row: dict = {"strategy": strategy, "dataset": Path(dataset).stem.split(".")[0],
                 "seed": seed, "run": str(out), "wall_s": time.monotonic() - start,
                 "exit_code": proc.returncode}
    if rss_file.is_file():
        row.update(json.loads(rss_file.read_text()))
        row["rss_above_imports_mb"] = row["peak_rss_mb"] - args.imports_rss_mb
    if proc.returncode != 0:
        row["error"] = (proc.stdout + proc.stderr)[-2000:]
        return row
    status = json.loads((out / "status.json").read_text())
    result = json.loads((out / "search" / "result.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    genotype = json.loads((out / "genotype.json").read_text())["genotype"]
    row.update({
        "search_s": status["search"]["seconds"],
        "retrain_s": status["retrain"]["seconds"],
        "search_epochs": result["epochs"],
        "stopped": result["stopped"],
        "skips_normal": sum(op in SKIPS for node in genotype["normal"] for op, _ in node),
        "params": metrics["params"],
        "test_acc": metrics["test"]["accuracy"],
        "test_auc": metrics["test"]["auc"],
        "val_auc": metrics["val"]["auc"],
        "genotype": genotype,
    })
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Mean over seeds per (dataset, strategy)."""
    keys = ["search_s", "rss_above_imports_mb", "skips_normal", "test_acc", "test_auc"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["strategy"]), []).append(r)
    table = []
    for (dataset, strategy), rs in groups.items():
        done = [r for r in rs if "error" not in r]
        entry = {"dataset": dataset, "strategy": strategy, "runs": len(rs), "failed":
                 len(rs) - len(done)}
        for k in keys:
            values = [r[k] for r in done if r.get(k) is not None]
            entry[k] = statistics.fmean(values) if values else None
        entry["stopped"] = sorted({r["stopped"] for r in done})
        table.append(entry)
    return table


def markdown(table: list[dict]) -> str:
    head = ("| dataset | strategy | search s | RSS MB | skips (normal) | test ACC | "
            "test AUC | search ended |")
    lines = [head, "|" + "---|" * 8]

    def f(v, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    for e in table:
        lines.append(f"| {e['dataset']} | {e['strategy']} | {f(e['search_s'], '.0f')} | "
                     f"{f(e['rss_above_imports_mb'], '.0f')} | {f(e['skips_normal'], '.1f')} | "
                     f"{f(e['test_acc'], '.4f')} | {f(e['test_auc'], '.4f')} | "
                     f"{', '.join(e['stopped']) or 'failed'} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[4:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", nargs="+", default=STRATEGIES)
    p.add_argument("--datasets", nargs="+", default=DATASETS,
                   help="MedMNIST flags or .npz files")
    p.add_argument("--budget", default="10m", help="per run (search + retrain + evaluate)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0: default)")
    p.add_argument("--set", action="append", help="extra --set KEY=VALUE for every run")
    p.add_argument("--runs", default="runs/darts_family", help="folder for the run folders")
    p.add_argument("--out", default="benchmarks/results/darts_family.json")
    args = p.parse_args()
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    args.imports_rss_mb = imports_rss_mb(Path(args.runs))
    rows = []
    for dataset in args.datasets:
        for strategy in args.strategies:
            for seed in args.seeds:
                row = run_one(strategy, dataset, seed, args)
                rows.append(row)
                print(f"{row['dataset']} {strategy} seed {seed}: "
                      + ("failed: " + row["error"][-300:] if "error" in row else
                         f"search {row['search_s']:.0f} s, test acc {row['test_acc']:.4f} "
                         f"auc {row['test_auc']}"), file=sys.stderr, flush=True)
    table = summarise(rows)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"benchmark": "darts_family", "config": config,
                                          "table": table, "runs": rows}, indent=1) + "\n")
    print(markdown(table))


if __name__ == "__main__":
    main()
