"""``final_fit=True``: after validation chose the epoch count, train once more on train +
validation for that many epochs, keeping the first network when that cannot finish."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from ..config import RunConfig
from ..data import ImageData, Normalizer
from ..run import RunDir
from ..spaces import BuildSpec, make_space
from ..spaces.base import build_network
from ..training.budget import Deadline
from ..training.trainer import TrainConfig, fit
from .callbacks import CallbackStop

KEEP = "keeping the network trained on the training split"


def final_fit(cfg: RunConfig, run: RunDir, data: ImageData, end: Deadline,
              device: torch.device,
              on_epoch: Callable[[int, dict[str, Any]], None] | None = None
              ) -> tuple[bool, str | None]:
    """(whether ``model.pt``/``model.json`` now hold the final network, what a raising
    callback said if one stopped it)."""
    meta = run.read_json("model.json")
    selected = epochs = int(meta["best_epoch"]) + 1
    both_x = torch.cat([data.train_x, data.val_x])
    both_y = torch.cat([data.train_y, data.val_y])
    retrain_epoch = run.epoch_seconds()
    if retrain_epoch is not None and end.at is not None:
        # Fewer epochs when all of them would not fit, so the schedule still completes.
        per_epoch = retrain_epoch * len(both_y) / len(data.train_y)
        epochs = min(epochs, int(0.9 * end.remaining() / per_epoch))
        if epochs < 1:
            warnings.warn(f"no time left for the final fit: {KEEP}", RuntimeWarning,
                          stacklevel=4)
            return False, None
    combined = ImageData(name=data.name, train_x=both_x, train_y=both_y, val_x=data.val_x,
                         val_y=data.val_y, test_x=data.test_x, test_y=data.test_y,
                         class_names=data.class_names, task=data.task, hflip=data.hflip,
                         vflip=data.vflip)
    space = make_space(meta["space"], **meta["space_options"])
    model = build_network(space, meta["arch"], BuildSpec(**meta["build"])).to(device)
    normalizer = Normalizer.fit(both_x)
    train = TrainConfig.from_dict({**asdict(cfg.train), "epochs": epochs})
    try:
        result = fit(model, combined, train, deadline=end, device=device, seed=cfg.seed,
                     run=run, prefix="final_fit", normalizer=normalizer, on_epoch=on_epoch)
    except KeyboardInterrupt:
        warnings.warn(f"final fit interrupted: {KEEP}", RuntimeWarning, stacklevel=4)
        return False, None
    except CallbackStop as stop:
        warnings.warn(f"final fit stopped by a callback ({stop}): {KEEP}", RuntimeWarning,
                      stacklevel=4)
        return False, str(stop)
    if result.state_dict is None or result.epochs < epochs:
        warnings.warn(f"the time limit cut the final fit after {result.epochs} of {epochs} "
                      f"epochs: {KEEP}", RuntimeWarning, stacklevel=4)
        return False, None
    run.save_state("model.pt", result.state_dict)
    run.write_json("model.json", {**meta, "normalizer": normalizer.to_dict(),
                                  "final_fit": {"epochs": epochs, "selected_epochs": selected,
                                                "images": len(both_y)}})
    return True, None
