"""Do zero-cost proxies rank architectures as training does? Rank correlation of each
proxy (and of the parameter count, the baseline) with the validation metrics after a fixed
number of training epochs.

For each space, ``--n`` architectures are drawn with a fixed seed; each is scored by the
proxies at initialisation (``--proxy-batches`` minibatches of ``--batch-size`` training
images), then trained for ``--epochs`` epochs with autonas' default recipe (no time limit,
best epoch by validation AUC) and evaluated on the validation split. The ``macro`` space is
drawn without its ``train.*`` choices: proxies see architectures, not learning rates.
Architectures over ``--max-mflops`` (multiply-adds of one image) are drawn again, as a CPU
search would exclude them with ``search.max_flops``; the macro space reaches 5 GFLOPs.
Training is epoch-based and one-threaded, so the ranks do not depend on how busy the machine
is. Finished architectures are kept in ``--out`` and reused on a rerun. Prints one JSON
document (Spearman and Kendall rank correlations, with p-values) and writes it under
``benchmarks/results/``.

    python benchmarks/proxies.py --dataset breastmnist --spaces macro darts --n 20 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import kendalltau, spearmanr

from autonas.data import BatchLoader, Normalizer, load_dataset
from autonas.proxies import PROXIES, score
from autonas.spaces import BuildSpec, make_space
from autonas.training.budget import Deadline
from autonas.training.device import configure_threads, seed_everything
from autonas.training.profile import count_flops
from autonas.training.trainer import TrainConfig, fit

HERE = Path(__file__).resolve().parent
SPACE_OPTIONS = {"macro": {"hyperparameters": False}}
CELL_SIZE = {"channels": 8, "layers": 5}  # the multi-trial proxy size of the cell spaces


def proxy_batches(data, n_batches: int, batch_size: int, seed: int) -> list:
    normalizer = Normalizer.fit(data.train_x)
    gen = torch.Generator().manual_seed(seed)
    loader = BatchLoader(data.train_x, data.train_y, batch_size, shuffle=True, drop_last=True,
                         normalizer=normalizer, device=torch.device("cpu"), generator=gen)
    batches = []
    for xb, yb in loader:
        batches.append((xb, yb))
        if len(batches) == n_batches:
            break
    return batches


def evaluate_arch(space_name: str, arch: dict[str, Any], data, batches: list,
                  epochs: int, seed: int) -> dict[str, Any]:
    space = make_space(space_name, **SPACE_OPTIONS.get(space_name, {}))
    spec = BuildSpec(data.channels, data.n_classes, data.image_size[0], **CELL_SIZE)
    seed_everything(seed)
    model = space.build(arch, spec)
    start = time.monotonic()
    proxies = score(model, batches)
    proxy_s = time.monotonic() - start
    result = fit(model, data, TrainConfig(epochs=epochs), deadline=Deadline(None),
                 device=torch.device("cpu"), seed=seed, progress=False)
    return {"arch": arch, "proxies": proxies, "proxy_s": proxy_s,
            "val_auc": result.best_metrics.get("auc"),
            "val_accuracy": result.best_metrics.get("accuracy"),
            "best_epoch": result.best_epoch}


def correlations(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in ("val_auc", "val_accuracy"):
        usable = [r for r in rows if r[target] is not None]
        y = [r[target] for r in usable]
        for name in PROXIES:
            x = [r["proxies"][name] for r in usable]
            rho, p_rho = spearmanr(x, y)
            tau, p_tau = kendalltau(x, y)
            out.setdefault(target, {})[name] = {
                "spearman": float(rho), "spearman_p": float(p_rho),
                "kendall": float(tau), "kendall_p": float(p_tau), "n": len(usable)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--spaces", nargs="+", default=["macro", "darts"])
    p.add_argument("--n", type=int, default=20, help="architectures per space")
    p.add_argument("--epochs", type=int, default=4, help="training epochs per architecture")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--proxy-batches", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-mflops", type=float, default=300.0,
                   help="redraw architectures over this many million FLOPs per image")
    p.add_argument("--out", default=None, help="per-architecture results (default: "
                   "benchmarks/results/proxies/DATASET)")
    args = p.parse_args()
    configure_threads(1)
    data = load_dataset(args.dataset)
    out = Path(args.out or HERE / "results" / "proxies" / Path(args.dataset).stem)
    out.mkdir(parents=True, exist_ok=True)
    batches = proxy_batches(data, args.proxy_batches, args.batch_size, args.seed)
    document: dict[str, Any] = {
        "benchmark": "proxies", "dataset": data.name, "n": args.n, "epochs": args.epochs,
        "proxy_batches": args.proxy_batches, "batch_size": args.batch_size,
        "seed": args.seed, "max_mflops": args.max_mflops,
        "threads": torch.get_num_threads(), "spaces": {}}
    for space_name in args.spaces:
        space = make_space(space_name, **SPACE_OPTIONS.get(space_name, {}))
        rng = random.Random(args.seed)
        rows = []
        spec = BuildSpec(data.channels, data.n_classes, data.image_size[0], **CELL_SIZE)
        shape = (data.channels, *data.image_size)
        for i in range(args.n):
            arch = space.sample(rng)
            while count_flops(space.build(arch, spec), shape) > args.max_mflops * 1e6:
                arch = space.sample(rng)
            cache = out / f"{space_name}-e{args.epochs}-{i:03d}.json"
            if cache.is_file() and json.loads(cache.read_text())["arch"] == arch:
                row = json.loads(cache.read_text())
            else:
                row = evaluate_arch(space_name, arch, data, batches, args.epochs,
                                    args.seed + i)
                cache.write_text(json.dumps(row) + "\n")
            rows.append(row)
            print(f"{space_name} {i + 1}/{args.n}: val auc {row['val_auc']}, "
                  f"proxies {row['proxies']}", flush=True)
        document["spaces"][space_name] = {"correlations": correlations(rows), "archs": rows}
    text = json.dumps(document, indent=1)
    name = f"proxies_{Path(args.dataset).stem}_n{args.n}_e{args.epochs}.json"
    (HERE / "results" / name).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
