"""One-shot search set-up: the proxy-task cap on images per search epoch."""

from __future__ import annotations

import numpy as np
import torch

from autonas.data import from_arrays
from autonas.run import RunDir
from autonas.spaces.darts import DartsSpace
from autonas.strategies import SearchContext, make_strategy
from autonas.training.budget import Deadline


def _data(n: int):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 12, 12), dtype=np.uint8)
    y = np.arange(n) % 2
    return from_arrays((x, y), (x[:10], y[:10]), (x[:10], y[:10]))


def _set_up(n_train: int, device: str = "cpu", **options):
    strategy = make_strategy("darts", channels=4, layers=2, batch_size=8, **options)
    ctx = SearchContext(data=_data(n_train), space=DartsSpace(nodes=2), run=RunDir("unused"),
                        deadline=Deadline(None), device=torch.device(device))
    strategy._setup(ctx)
    return strategy


def _loaded(n_train: int, device: str, **options) -> int:
    strategy = _set_up(n_train, device, **options)
    return strategy.weight_loader.num_samples + strategy.arch_loader.num_samples


def test_search_images_caps_the_images_per_epoch() -> None:
    assert _loaded(200, "cpu", search_images=60) == 60
    assert _loaded(1300, "cpu") == 1200  # the default cap
    assert _loaded(1300, "cpu", search_images=None) == 1300  # null: no cap, not the default
    assert _loaded(40, "cpu", search_images=60) == 40  # small sets are used whole


def test_search_images_cap_keeps_both_classes_and_a_batch_per_half() -> None:
    strategy = _set_up(200, search_images=20)
    for loader in (strategy.weight_loader, strategy.arch_loader):
        assert loader.num_samples >= 2 * 8  # at least two batches, whatever the cap
        assert set(loader.y.tolist()) == {0, 1}
