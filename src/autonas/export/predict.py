"""Predict image files with a trained model, preprocessing them as its training data was:
same size and channels (and the run's resize rule), normalisation from model.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.folder import is_image_file, load_images
from ..errors import DataError
from ..run import RunDir
from . import load_wrapped


def expand_images(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders become the image files inside them (recursively, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f))
            if not found:
                raise DataError(f"{p}: folder holds no image files")
            out += found
        elif not p.exists():
            raise DataError(f"{p}: image file not found")
        else:
            out.append(p)
    if not out:
        raise DataError("no images given: pass image files or folders")
    return out


def _resize_rule(path: Path) -> str:
    run = RunDir(path)
    if run.exists("config.yaml"):
        source = (run.read_yaml("config.yaml") or {}).get("source") or {}
        return source.get("resize", "crop")
    return "crop"


def predict_files(model_dir: str | Path, images: Sequence[str | Path], batch_size: int = 128
                  ) -> tuple[list[str], list[tuple[Path, str, np.ndarray]]]:
    """Class names, and (file, predicted class name, probabilities) per image in the order
    given. Everything is predicted before anything is returned, so an unreadable file
    stops the command before a partial table is written. A multi-label model's prediction
    is the labels over their thresholds (chosen on validation), joined by ``|``."""
    model, meta, spec = load_wrapped(model_dir)
    files = expand_images(images)
    square = spec["height"] == spec["width"]
    resize = meta.get("input", {}).get("resize") or _resize_rule(Path(model_dir))
    names = [str(n) for n in meta["class_names"]]
    multi_label = model.head == "sigmoid"
    thresholds = np.asarray(meta.get("thresholds") or [0.5] * len(names))
    rows: list[tuple[Path, str, np.ndarray]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        x, _ = load_images(chunk, spec["height"] if square else None,
                           grayscale=spec["channels"] == 1, resize=resize)
        if x.shape[2:] != (spec["height"], spec["width"]):
            raise DataError(f"images are {x.shape[3]}x{x.shape[2]} px but the model was "
                            f"trained on {spec['width']}x{spec['height']}; resize them first")
        with torch.no_grad():
            probs = model(torch.from_numpy(x)).numpy()
        if multi_label:
            rows += [(f, "|".join(n for n, on in zip(names, p >= thresholds) if on), p)
                     for f, p in zip(chunk, probs)]
        else:
            rows += [(f, names[int(p.argmax())], p) for f, p in zip(chunk, probs)]
    return names, rows
