"""The bar a search must clear: a plain ResNet-18 (28 px stem) trained for the same minutes.

This is what a user would do instead of a search: take torchvision's ResNet-18, give it a
3x3 stride-1 stem without max-pooling (the MedMNIST v2 paper's "ResNet-18 (28)"), and train
it for the whole budget with the same loop, augmentation and model selection (validation
AUC) that autonas retrains with. Prints one JSON document.

    python benchmarks/baseline_resnet18.py --dataset breastmnist --budget 10m
    python benchmarks/baseline_resnet18.py --budget 20m \
        --dataset ../shared/data/medmnist/pneumoniamnist.recombined.npz
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

from autonas.data import Normalizer, load_dataset
from autonas.training.budget import Deadline, parse_duration
from autonas.training.device import configure_threads, resolve_device, seed_everything
from autonas.training.loop import predict_proba
from autonas.training.metrics import classification_metrics
from autonas.training.profile import count_params
from autonas.training.trainer import TrainConfig, fit


def resnet18_28px(in_channels: int, num_classes: int) -> nn.Module:
    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", "--data", default="breastmnist",
                   help="a MedMNIST flag or a path to an .npz file")
    p.add_argument("--budget", default="10m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--json-out", default=None,
                   help="also write the JSON document to this file")
    args = p.parse_args()

    start = time.monotonic()
    seconds = parse_duration(args.budget)
    device = resolve_device(args.device)
    configure_threads()
    seed_everything(args.seed)
    data = load_dataset(args.dataset)
    model = resnet18_28px(data.channels, data.n_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    normalizer = Normalizer.fit(data.train_x)
    # Keep ~3% of the budget for the test evaluation, as autonas does.
    deadline = Deadline(start + seconds * 0.97)
    cfg = TrainConfig(lr=args.lr, batch_size=args.batch_size, drop_path=0.0)
    result = fit(model, data, cfg, deadline=deadline, device=device, seed=args.seed,
                 normalizer=normalizer, progress=False)
    model.load_state_dict(result.state_dict)
    probs = predict_proba(model, data.test_x, normalizer=normalizer, device=device)
    test = classification_metrics(data.test_y.numpy(), probs, data.class_names)
    document = {
        "benchmark": "resnet18_28px_baseline",
        "dataset": data.name,
        "budget_s": seconds,
        "wall_s": time.monotonic() - start,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "params": count_params(model),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "val": {k: result.best_metrics.get(k) for k in ("accuracy", "auc", "loss")},
        "test": {k: test[k] for k in ("accuracy", "auc", "loss")},
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    text = json.dumps(document, indent=1)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
