"""Small synthetic datasets in MedMNIST layout, shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_split(n: int, n_classes: int = 2, size: int = 12, channels: int = 0, seed: int = 0):
    """uint8 images (N,H,W) or (N,H,W,C) and (N,1) labels cycling through every class."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels == 0 else (n, size, size, channels)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    y = (np.arange(n) % n_classes).astype(np.uint8).reshape(n, 1)
    return x, y


def write_npz(path: Path, sizes=(20, 6, 8), n_classes: int = 2, **kw) -> Path:
    arrays = {}
    for i, (split, n) in enumerate(zip(("train", "val", "test"), sizes, strict=True)):
        x, y = make_split(n, n_classes, seed=i, **kw)
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y
    np.savez(path, **arrays)
    return path


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    return write_npz(tmp_path / "tiny.npz")


@pytest.fixture(name="make_split")
def _make_split_fixture():
    return make_split


@pytest.fixture(name="write_npz")
def _write_npz_fixture():
    return write_npz


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the real user cache from tests."""
    cache = tmp_path / "autonas-cache"
    monkeypatch.setenv("AUTONAS_DATA", str(cache))
    return cache
