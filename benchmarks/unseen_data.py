"""Datasets this project was never developed on, for the equal-budget benchmark: other
image sizes, channel counts and class counts than BreastMNIST and PneumoniaMNIST.

Both come from scikit-learn's bundled copy of the UCI handwritten digits (1,797 images of
10 classes, 8x8 px, grey), so they need no download:

- ``digits``: the images as they are: 8 px, 1 channel, 10 classes.
- ``digits_colour``: each image upsampled to 16 px and painted with a random foreground
  and background colour: 16 px, 3 channels, 10 classes, colour a nuisance to ignore.

Splits are stratified, 70 / 10 / 20 % train / val / test, fixed by ``--seed``. Writes
MedMNIST-layout ``.npz`` files and prints their paths:

    python benchmarks/unseen_data.py --out benchmarks/data
    python benchmarks/equal_budget.py --dataset benchmarks/data/digits.npz --budget 3m
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def splits(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, stratify=y,
                                                      random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.125,
                                                      stratify=y_rest, random_state=seed)
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def write(path: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    arrays = {}
    for split, (x, y) in parts.items():
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y.reshape(-1, 1).astype(np.int64)
    np.savez_compressed(path, **arrays)
    return path


def digits() -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) uint8 in 0..255, labels 0..9."""
    bunch = load_digits()
    images = np.round(bunch.images / 16.0 * 255.0).astype(np.uint8)
    return images, bunch.target


def coloured(images: np.ndarray, seed: int) -> np.ndarray:
    """(N, 16, 16, 3) uint8: each 8 px image doubled in size, its ink one random colour and
    its paper another."""
    rng = np.random.default_rng(seed)
    ink = images.repeat(2, axis=1).repeat(2, axis=2).astype(np.float32)[..., None] / 255.0
    fg = rng.integers(0, 256, size=(len(images), 1, 1, 3)).astype(np.float32)
    bg = rng.integers(0, 256, size=(len(images), 1, 1, 3)).astype(np.float32)
    return np.round(ink * fg + (1.0 - ink) * bg).astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "data"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = digits()
    print(write(out / "digits.npz", splits(x, y, args.seed)))
    print(write(out / "digits_colour.npz", splits(coloured(x, args.seed), y, args.seed)))


if __name__ == "__main__":
    main()
