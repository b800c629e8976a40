"""A few training images per class, saved at the start of a run for the report's header.

The report never reloads the dataset (it reads the run folder only), so the pixels it shows
must be in the folder: ``samples.npz`` holds ``images`` (N, C, H, W) uint8, ``labels`` (N,)
and ``class_names``, a few kilobytes for MedMNIST-sized images.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..run import get_logger

PER_CLASS = 6
MAX_CLASSES = 24
"""Classes shown with sample images at most (evenly spread over the class list), so the
samples file and the report stay small with hundreds of classes."""
MAX_SIDE = 64  # larger images are shrunk: thumbnails need no more


def write_samples(path: str | Path, data: Any, per_class: int = PER_CLASS,
                  seed: int = 0) -> Path | None:
    """Save up to ``per_class`` random training images of each class of ``data`` (an
    ``ImageData``). Never raises: a run must not fail over its report's thumbnails."""
    path = Path(path)
    try:
        x, y = data.split("train")
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
        rng = np.random.default_rng(seed)
        picks = []
        for c in shown_classes(len(data.class_names)):
            idx = np.flatnonzero(y == c)
            picks.extend(sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False)))
        picks_arr = np.asarray(picks, dtype=np.int64)
        images = np.stack([_thumbnail(to_uint8(x[i])) for i in picks_arr]) if len(picks) else \
            np.zeros((0, *x.shape[1:]), dtype=np.uint8)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, images=images, labels=y[picks_arr].astype(np.int64),
                            class_names=np.asarray([str(n) for n in data.class_names]))
        os.replace(tmp, path)
        return path
    except Exception as exc:
        get_logger().warning("could not save sample images for the report: %s", exc)
        return None


def shown_classes(n_classes: int, limit: int = MAX_CLASSES) -> list[int]:
    """All classes up to ``limit``; beyond it ``limit`` of them, evenly spread."""
    if n_classes <= limit:
        return list(range(n_classes))
    return sorted(set(np.linspace(0, n_classes - 1, limit).round().astype(int).tolist()))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) pixels as uint8; float images are scaled by their own range."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    image = image.astype(np.float64)
    lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
    if lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return np.clip(np.round(255 * scaled), 0, 255).astype(np.uint8)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    _, h, w = image.shape
    if max(h, w) <= MAX_SIDE:
        return image
    from PIL import Image

    scale = MAX_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([np.asarray(Image.fromarray(ch).resize(size, Image.Resampling.BILINEAR))
                     for ch in image])


def png_data_uri(image: np.ndarray) -> str:
    """A (C, H, W) uint8 image as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    image = to_uint8(image)
    if image.ndim == 2:
        image = image[None]
    if image.shape[0] == 3:
        pil = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
    else:
        pil = Image.fromarray(np.ascontiguousarray(image[0]))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def samples_by_class(samples: dict[str, np.ndarray] | None,
                     class_names: list[str]) -> list[tuple[str, list[str]]]:
    """(class name, PNG data URIs) per class, from a loaded ``samples.npz``."""
    if not samples or "images" not in samples or "labels" not in samples:
        return []
    names = [str(n) for n in samples.get("class_names", [])] or class_names
    images, labels = samples["images"], np.asarray(samples["labels"]).reshape(-1)
    out = []
    for c in sorted(set(labels.tolist())):
        name = names[c] if 0 <= c < len(names) else str(c)
        out.append((name, [png_data_uri(images[i]) for i in np.flatnonzero(labels == c)]))
    return out
