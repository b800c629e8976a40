"""User inputs to tensors: numpy arrays and tensors in any common layout, a torch Dataset,
PIL images or image files; labels of any type. Shared by the ImageClassifier's fit and its
predictions, so both read images the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .folder import load_images
from .validate import to_images


def read_inputs(
    x: Any,
    y: Any,
    *,
    fitting: bool,
    spec: dict[str, Any] | None = None,
    image_size: int | None = None,
    resize: str = "crop",
) -> tuple[torch.Tensor, np.ndarray | None, dict[str, Any]]:
    """(images (N,C,H,W) uint8/float32, labels or None, input spec)."""
    if isinstance(x, torch.utils.data.Dataset) and not isinstance(x, torch.Tensor):
        x, labels = _from_dataset(x)
        if y is None:
            y = labels
    kind = _kind(x)
    if kind == "files":
        images, spec = _read_files(list(x), spec, image_size, resize)
    else:
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        images = to_images(arr, "train" if fitting else "input", where="ImageClassifier")
        layout = (
            "NHW"
            if arr.ndim == 3
            else ("NHWC" if arr.ndim == 4 and 1 <= arr.shape[3] <= 4 else "NCHW")
        )
        new = {
            "kind": "array",
            "layout": layout,
            "dtype": "uint8" if images.dtype == torch.uint8 else "float32",
        }
        if spec is None:
            spec = {
                **new,
                "pixel_max": _pixel_max(images),
                "channels": int(images.shape[1]),
                "height": int(images.shape[2]),
                "width": int(images.shape[3]),
                "image_size": None,
                "grayscale": images.shape[1] == 1,
                "resize": resize,
            }
    _check_size(images, spec)
    if y is None:
        if fitting:
            raise DataError("fit needs labels: pass y, or a Dataset of (image, label) items")
        return images, None, spec
    labels = as_labels(y, len(images))
    return images, labels, spec


def _pixel_max(images: torch.Tensor) -> float:
    """The largest value of float images (the scale they were given on; predictions on
    another scale are rescaled, see ``export.wrap``); 255 for uint8."""
    if images.dtype == torch.uint8 or images.numel() == 0:
        return 255.0
    return float(images.max())


def _read_files(
    items: list[Any], spec: dict[str, Any] | None, image_size: int | None, resize: str
) -> tuple[torch.Tensor, dict[str, Any]]:
    if spec is None:
        size = image_size
        if size is None:
            sizes = {_image_size(s) for s in items}
            size = None if len(sizes) == 1 else 64
        x, gray = load_images(items, size, None, resize)
        spec = {
            "kind": "files",
            "layout": "NCHW",
            "dtype": "uint8",
            "channels": int(x.shape[1]),
            "height": int(x.shape[2]),
            "width": int(x.shape[3]),
            "image_size": size,
            "grayscale": gray,
            "resize": resize,
        }
    else:
        size = spec.get("image_size")
        if size is None and spec["height"] == spec["width"]:
            size = spec["height"]
        x, _ = load_images(items, size, spec["channels"] == 1, spec.get("resize", "crop"))
    return torch.from_numpy(x), spec


def _check_size(images: torch.Tensor, spec: dict[str, Any]) -> None:
    if (images.shape[2], images.shape[3]) != (spec["height"], spec["width"]):
        raise DataError(
            f"images are {images.shape[3]}x{images.shape[2]} px but the "
            f"classifier was trained on {spec['width']}x{spec['height']} px; "
            "resize them to that size first"
        )


def encode_fit_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted classes, class index per label); at least two classes are needed."""
    classes, y_idx = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"every label is {classes.tolist()[0]!r}: classification needs at least 2 classes"
        )
    return classes, y_idx.astype(np.int64).ravel()


def encode_labels(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class indices of ``labels``; labels not seen in fit are an error."""
    lookup = {label_key(c): i for i, c in enumerate(classes)}
    pos = np.array([lookup.get(label_key(v), -1) for v in labels], dtype=np.int64)
    ok = pos >= 0
    if not np.all(ok):
        unknown = sorted({str(label_key(v)) for v in labels[~ok]})[:5]
        known = ", ".join(str(label_key(c)) for c in classes)
        raise DataError(f"labels {', '.join(unknown)} were not seen in fit; the classes are "
                        f"{known}")
    return pos


def _kind(x: Any) -> str:
    if (
        isinstance(x, (list, tuple))
        and x
        and all(isinstance(v, (str, Path, Image.Image)) for v in x)
    ):
        return "files"
    if isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "OU":
        return "files"
    return "array"


def _image_size(item: Any) -> tuple[int, int]:
    if isinstance(item, Image.Image):
        return item.size
    try:
        with Image.open(item) as img:
            return img.size
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{item}: cannot be read as an image ({exc}); delete or replace the file"
        ) from None


def _from_dataset(ds: torch.utils.data.Dataset) -> tuple[Any, np.ndarray | None]:
    """Stack a map-style Dataset's (image, label) items: images stay PIL images when they
    are, else become one array."""
    try:
        n = len(ds)  # type: ignore[arg-type]
    except TypeError:
        raise DataError("the Dataset has no len(): pass a map-style Dataset, or arrays") from None
    images, labels = [], []
    for i in range(n):
        item = ds[i]
        if isinstance(item, (tuple, list)) and len(item) >= 2:
            img, label = item[0], item[1]
            labels.append(label.item() if isinstance(label, torch.Tensor) else label)
        else:
            img = item
        images.append(img)
    if not images:
        raise DataError("the Dataset is empty")
    if all(isinstance(img, Image.Image) for img in images):
        x: Any = images
    else:
        x = np.stack(
            [img.numpy() if isinstance(img, torch.Tensor) else np.asarray(img) for img in images]
        )
    return x, (np.asarray(labels) if len(labels) == n else None)


def as_labels(y: Any, n: int) -> np.ndarray:
    """Labels as a 1-D array of length ``n`` (from (N,) or (N, 1), list, array, tensor)."""
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(
            f"y has shape {arr.shape}; pass one label per image, shape (N,) or "
            "(N, 1) (for one-hot labels, pass y.argmax(1))"
        )
    if len(arr) != n:
        raise DataError(f"{n} images but {len(arr)} labels; pass one label per image")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DataError("y holds NaN or infinite labels; every image needs a label")
    return arr


def label_key(value: Any) -> Any:
    """numpy scalars as Python values, so np.int64(1), np.uint8(1), 1 and 1.0 find the same
    class (strings stay strings: '1' is another label than 1)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
