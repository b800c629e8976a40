"""BreastMNIST at 28, 64 and 128 px under the same budget: `autonas run` at each size.

The official 64 and 128 px MedMNIST+ files cannot be downloaded on the machines this was
written on, so the larger sets are made by resizing the bundled 28 px set (bilinear): they
hold no more detail than 28 px. What the benchmark measures is how the size-adapted
networks (stems that bring every size to ~28-32 px at the cells) and the search proxy
(search at <= 64 px on CPU, retrain at full size) use one budget at each size: test
accuracy and AUC, retraining epochs that fit, the search resolution, and the wall time.
It is not evidence of what real high-resolution images would gain. With the official
files in the MedMNIST cache, pass --official to run `--dataset breastmnist --size N`.

    python benchmarks/sizes.py                           # 3 runs x 10 minutes on 2 CPUs
    python benchmarks/sizes.py --budget 20m --sizes 28 128
    python benchmarks/sizes.py --smoke                   # seconds: checks the script only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from common import AUTONAS

RESIZED_NOTE = ("64/128 px sets are the bundled 28 px BreastMNIST resized (bilinear), "
                "not the official MedMNIST+ files")
SMOKE_SETS = [
    "--set", "search.max_trials=2", "--set", "search.trial_epochs=1",
    "--set", "search.trial_channels=4", "--set", "search.trial_layers=2",
    "--set", "space_options.nodes=2", "--set", "network.channels=4",
    "--set", "network.layers=2", "--set", "train.epochs=1",
]


def write_resized(side: int, folder: Path, smoke: bool) -> Path:
    """The bundled BreastMNIST at ``side`` px as an .npz in the MedMNIST layout."""
    from autonas.data import load_dataset

    data = load_dataset("breastmnist")
    if smoke:  # a few images per split, enough to check the script end to end
        import dataclasses

        data = dataclasses.replace(data, **{f"{s}_{k}": getattr(data, f"{s}_{k}")[:48]
                                            for s in ("train", "val", "test")
                                            for k in ("x", "y")})
    data = data.resized(side)
    arrays = {}
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        arrays[f"{split}_images"] = x.numpy()[:, 0]
        arrays[f"{split}_labels"] = y.numpy().reshape(-1, 1).astype(np.uint8)
    path = folder / f"breastmnist_{side}.npz"
    np.savez(path, **arrays)
    return path


def run_size(side: int, budget: str, folder: Path, official: bool, smoke: bool) -> dict:
    out = folder / f"run-{side}"
    data = (["--dataset", "breastmnist", "--size", str(side)] if official
            else ["--data", str(write_resized(side, folder, smoke))])
    cmd = [*AUTONAS, "run", *data, "--budget", budget, "--out", str(out), "--seed", "0",
           *(SMOKE_SETS if smoke else [])]
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.monotonic() - start
    metrics = json.loads((out / "metrics.json").read_text())
    model = json.loads((out / "model.json").read_text())
    search = json.loads((out / "search" / "result.json").read_text())
    return {
        "size": side,
        "data": "official" if official else ("bundled 28 px" if side == 28 else "resized"),
        "search_image_size": search.get("image_size"),
        "search_epochs": search.get("epochs"),
        "retrain_epochs": model.get("epochs"),
        "params": metrics.get("params"),
        "test_accuracy": metrics["test"]["accuracy"],
        "test_auc": metrics["test"]["auc"],
        "wall_seconds": round(wall, 1),
        "run": str(out),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[28, 64, 128])
    p.add_argument("--budget", default="10m", help="budget of every run (default 10m)")
    p.add_argument("--out", type=Path, default=None, help="folder for data and run folders")
    p.add_argument("--official", action="store_true",
                   help="load the official MedMNIST+ files (--dataset breastmnist --size N)")
    p.add_argument("--smoke", action="store_true", help="tiny data, nets and budget")
    args = p.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="autonas-sizes-"))
    folder.mkdir(parents=True, exist_ok=True)
    budget = "60s" if args.smoke else args.budget
    results = [run_size(side, budget, folder, args.official, args.smoke) for side in args.sizes]
    print(json.dumps({
        "benchmark": "BreastMNIST at several image sizes, one budget each",
        "budget": budget, "smoke": args.smoke,
        "note": "official MedMNIST+ files" if args.official else RESIZED_NOTE,
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
