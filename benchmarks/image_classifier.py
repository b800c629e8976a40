"""Seed 000's AutoKeras calls, with autonas' ImageClassifier, on BreastMNIST and PneumoniaMNIST.

The calls are the seed's, verbatim apart from the import:

    clf = ImageClassifier(overwrite=True, max_trials=5)
    clf.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=10)
    clf.evaluate(x_test, y_test)

so the default 10-minute time limit applies. Each dataset runs in its own process (peak
RSS is per dataset); one JSON document is printed, with AutoKeras' test accuracy from the
seed next to ours (0.625 on PneumoniaMNIST, where it called every image pneumonia; 0.788 on
BreastMNIST).

    python benchmarks/image_classifier.py                      # both, ~20 minutes on 2 CPUs
    python benchmarks/image_classifier.py --dataset breastmnist
    python benchmarks/image_classifier.py --smoke              # seconds: checks the script only
    python benchmarks/image_classifier.py --epochs none --time-limit 120   # not the seed's:
        # the retrain trains as many epochs as the limit allows
    python benchmarks/image_classifier.py --seeds 0 1 2 3 4    # the same calls with seed=...:
        # which five architectures and which initialisation one call gets is luck; the
        # mean over seeds is the number to compare with AutoKeras'
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import PNEUMONIA, spread

AUTOKERAS_SEED_ACCURACY = {"pneumoniamnist": 0.625, "breastmnist": 0.788}
AUTOKERAS_PAPER = {"pneumoniamnist": {"accuracy": 0.878, "auc": 0.947},
                   "breastmnist": {"accuracy": 0.831, "auc": 0.871}}
"""AutoKeras' test ACC / AUC at 28 px in the MedMNIST v2 paper (copied, not run here)."""


def load(name: str, pneumonia: Path) -> dict[str, np.ndarray]:
    """The splits as the seed held them: numpy (N, 28, 28) uint8 images, (N, 1) labels."""
    if name == "breastmnist":
        from autonas.data import load_dataset

        data = load_dataset("breastmnist")
        out = {}
        for split in ("train", "val", "test"):
            x, y = data.split(split)
            out[f"x_{split}"] = x.numpy()[:, 0]
            out[f"y_{split}"] = y.numpy().reshape(-1, 1)
        return out
    with np.load(pneumonia) as f:
        return {f"{k}_{s}": f[f"{s}_{'images' if k == 'x' else 'labels'}"]
                for s in ("train", "val", "test") for k in ("x", "y")}


def run_one(name: str, pneumonia: Path, smoke: bool, epochs: int | None = 10,
            time_limit: float | None = None, seed: int | None = None,
            trial_epochs: int | None = None, ensemble: str | None = None) -> dict:
    import torch

    from autonas import ImageClassifier

    d = load(name, pneumonia)
    x_train, y_train, x_val, y_val = d["x_train"], d["y_train"], d["x_val"], d["y_val"]
    x_test, y_test = d["x_test"], d["y_test"]
    seeded = {} if seed is None else {"seed": seed}  # the seed's call leaves it out (0)
    start = time.monotonic()
    if smoke:  # a tiny stand-in for the seed's calls, to check the script runs
        rng = np.random.default_rng(0)
        tr, va, te = (rng.permutation(len(a))[:n] for a, n in
                      ((x_train, 120), (x_val, 40), (x_test, 40)))
        x_train, y_train, x_val, y_val = x_train[tr], y_train[tr], x_val[va], y_val[va]
        x_test, y_test = x_test[te], y_test[te]
        clf = ImageClassifier(overwrite=True, max_trials=2, time_limit=20, verbose=False,
                              search_options={"trial_epochs": 1}, **seeded)
        clf.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=1)
    else:
        options = {} if time_limit is None else {"time_limit": time_limit}
        if trial_epochs is not None:  # not the seed's call: its trials train min(epochs, 4)
            options["search_options"] = {"trial_epochs": trial_epochs}
        if ensemble is not None:  # not the seed's call: its default is 'auto'
            options["ensemble"] = ensemble if ensemble == "auto" else int(ensemble)
        clf = ImageClassifier(overwrite=True, max_trials=5, **options, **seeded)
        clf.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs)
    fit_seconds = time.monotonic() - start
    loss, accuracy = clf.evaluate(x_test, y_test)  # the seed's call: Keras' [loss, accuracy]
    metrics = clf.evaluate(x_test, y_test, return_dict=True)  # plus the AUC
    assert (metrics["loss"], metrics["accuracy"]) == (loss, accuracy)
    return {
        "dataset": name,
        "seed": seed,
        "ensemble_option": ensemble,
        "members": member_results(clf, x_test, y_test),
        "tta": clf.model_meta_.get("tta"),
        "without_tta": without_tta(clf, x_test, y_test),
        "smoke": smoke,
        "train_images": len(y_train),
        "test_images": len(y_test),
        "fit_seconds": round(fit_seconds, 1),
        "wall_seconds": round(time.monotonic() - start, 1),
        "time_limit_seconds": 20 if smoke else time_limit or 600,
        "epochs": 1 if smoke else epochs,
        "trial_epochs": trial_epochs,
        "retrain_epochs": clf.model_meta_.get("epochs"),
        "threads": torch.get_num_threads(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "test_accuracy": metrics["accuracy"],
        "test_auc": metrics["auc"],
        "test_loss": metrics["loss"],
        "strategy": clf.strategy_,
        "space": clf.search_space_,
        "architecture": clf.architecture_,
        "val_metrics": {k: clf.val_metrics_.get(k) for k in ("accuracy", "auc", "loss")},
        "failures": clf.failures_,
        "autokeras_seed_test_accuracy": AUTOKERAS_SEED_ACCURACY[name],
    }


def member_results(clf, x_test: np.ndarray, y_test: np.ndarray) -> list[dict] | None:
    """For an ensemble: each member's test ACC / AUC alone, and those of the average of the
    first k members (k = 1 is the network a one-network fit would have kept), each with the
    final model's test-time flips."""
    import torch

    from autonas.spaces.ensemble import Ensemble, unwrap, with_tta

    network = unwrap(clf.model_.network)
    if not isinstance(network, Ensemble):
        return None
    images = clf.model_.preprocess(torch.as_tensor(x_test))
    labels = np.asarray(y_test).ravel()
    with torch.no_grad():
        probs = [with_tta(m, clf.model_meta_)(images).softmax(dim=1).numpy()
                 for m in network.members]
    out = []
    for k, p in enumerate(probs, start=1):
        mean = np.mean(probs[:k], axis=0)
        out.append({"alone": _scores(labels, p), "first_k": _scores(labels, mean)})
    return out


def without_tta(clf, x_test: np.ndarray, y_test: np.ndarray) -> dict | None:
    """The final model's test ACC / AUC without its test-time flips (None: it has none)."""
    import torch

    from autonas.spaces.ensemble import unwrap

    network = clf.model_.network
    if unwrap(network) is network:
        return None
    images = clf.model_.preprocess(torch.as_tensor(x_test))
    with torch.no_grad():
        probs = unwrap(network)(images).softmax(dim=1).numpy()
    return _scores(np.asarray(y_test).ravel(), probs)


def _scores(labels: np.ndarray, probs: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, roc_auc_score

    auc = roc_auc_score(labels, probs[:, 1]) if probs.shape[1] == 2 else roc_auc_score(
        labels, probs, multi_class="ovr")
    return {"accuracy": float(accuracy_score(labels, probs.argmax(1))), "auc": float(auc)}


def summary(results: list[dict]) -> dict:
    """Per dataset: test ACC and AUC over the runs (mean, sd), next to AutoKeras' paper."""
    out = {}
    for name in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == name]
        out[name] = {"runs": len(rows), "autokeras_paper": AUTOKERAS_PAPER[name]}
        for key in ("accuracy", "auc"):
            values = [r[f"test_{key}"] for r in rows]
            out[name][key] = {**spread(values), "min": min(values), "max": max(values)}
            if all(r.get("without_tta") for r in rows):  # the same runs, flips not averaged
                plain = [r["without_tta"][key] for r in rows]
                out[name][f"{key}_without_tta"] = spread(plain)
                out[name][f"{key}_tta_gain"] = spread(np.subtract(values, plain).tolist())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["breastmnist", "pneumoniamnist", "both"],
                   default="both")
    p.add_argument("--pneumonia", type=Path, default=PNEUMONIA,
                   help="PneumoniaMNIST npz (MedMNIST layout)")
    p.add_argument("--smoke", action="store_true", help="tiny data and limits: seconds")
    p.add_argument("--epochs", default="10", help="fit's epochs (the seed: 10), or none")
    p.add_argument("--time-limit", type=float, default=None,
                   help="ImageClassifier's time_limit in seconds (default: its own, 600)")
    p.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="run the calls once per seed (ImageClassifier(seed=...)); default: "
                   "once, as the seed's calls (seed 0)")
    p.add_argument("--trial-epochs", type=int, default=None,
                   help="epochs of each of the five trials (not the seed's call, whose trials "
                   "train min(epochs, 4))")
    p.add_argument("--ensemble", default=None,
                   help="ImageClassifier's ensemble (default: its own, auto; 1: one network)")
    args = p.parse_args()
    epochs = None if args.epochs.lower() == "none" else int(args.epochs)
    names = ("breastmnist", "pneumoniamnist") if args.dataset == "both" else (args.dataset,)
    if len(names) == 1 and args.seeds is None:
        print(json.dumps(run_one(args.dataset, args.pneumonia, args.smoke, epochs,
                                 args.time_limit, args.seed, args.trial_epochs,
                                 args.ensemble), indent=1))
        return
    results = []
    for name in names:
        for seed in args.seeds or [None]:
            cmd = [sys.executable, __file__, "--dataset", name, "--pneumonia",
                   str(args.pneumonia), "--epochs", args.epochs]
            if args.time_limit is not None:
                cmd += ["--time-limit", str(args.time_limit)]
            if seed is not None:
                cmd += ["--seed", str(seed)]
            if args.trial_epochs is not None:
                cmd += ["--trial-epochs", str(args.trial_epochs)]
            if args.ensemble is not None:
                cmd += ["--ensemble", args.ensemble]
            if args.smoke:
                cmd.append("--smoke")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out))
    print(json.dumps({"benchmark": "ImageClassifier, seed 000 calls", "results": results,
                      **({"summary": summary(results)} if args.seeds else {})}, indent=1))


if __name__ == "__main__":
    main()
