"""Multi-label targets for the ImageClassifier: (N, L) 0/1 arrays, or one collection of
class names per image (``[["effusion", "mass"], [], ...]``), in and out.

``predict`` answers in the form ``fit`` was given: a 0/1 array for 0/1 targets, lists of
class names for name sets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ..errors import DataError

INDICATOR = "indicator"
NAMES = "names"


def _is_collection(item: Any) -> bool:
    return isinstance(item, (list, tuple, set, frozenset))


def looks_multi_label(y: Any) -> bool:
    """Whether ``y`` holds label sets: (N, L>1) 0/1 numbers, or a collection per image."""
    if y is None:
        return False
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if isinstance(y, np.ndarray):
        if y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "buif":
            return bool(np.isin(y, (0, 1)).all())
        return y.dtype == object and len(y) > 0 and all(_is_collection(v) for v in y)
    if isinstance(y, (list, tuple)) and y and all(_is_collection(v) for v in y):
        numeric = _numeric(y)
        return numeric is None or (numeric.ndim == 2 and numeric.shape[1] > 1)
    return False


def fit_label_sets(y: Any, n: int, num_classes: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, str]:
    """(classes, (N, L) int64 indicators, kind) of the targets given to ``fit``."""
    arr = _numeric(y)
    if arr is not None:
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise DataError(f"multi-label y has shape {arr.shape}; pass (N, L) 0/1 columns")
        classes = np.arange(arr.shape[1])
        return classes, _indicators(arr, n), INDICATOR
    sets = _name_sets(y, n)
    classes = np.array(sorted({label for s in sets for label in s}, key=str), dtype=object)
    if len(classes) < 2:
        raise DataError(f"multi-label y names {len(classes)} class(es); at least 2 are needed")
    if num_classes is not None and len(classes) != num_classes:
        raise DataError(f"num_classes={num_classes} but the label sets name {len(classes)} "
                        f"classes: {list(classes)[:10]}")
    return classes, encode_label_sets(sets, classes, NAMES, n), NAMES


def encode_label_sets(y: Any, classes: np.ndarray, kind: str, n: int) -> np.ndarray:
    """(N, L) int64 indicators of ``y`` in the columns of ``classes``."""
    if kind == INDICATOR:
        arr = _numeric(y)
        if arr is None or arr.ndim != 2 or arr.shape[1] != len(classes):
            raise DataError(f"y must be (N, {len(classes)}) 0/1 columns, like in fit")
        return _indicators(arr, n)
    column = {str(c): j for j, c in enumerate(classes)}
    out = np.zeros((n, len(classes)), dtype=np.int64)
    for i, labels in enumerate(_name_sets(y, n)):
        for label in labels:
            if str(label) not in column:
                raise DataError(f"label {label!r} (image {i}) was not seen in fit; the "
                                f"classes are {list(classes)}")
            out[i, column[str(label)]] = 1
    return out


def decode_label_sets(pred: np.ndarray, classes: np.ndarray, kind: str) -> Any:
    """Predicted indicators back in the form of ``fit``'s targets."""
    if kind == INDICATOR:
        return pred.astype(np.int64)
    return [[classes[j] for j in np.flatnonzero(row)] for row in pred]


def _numeric(y: Any) -> np.ndarray | None:
    if isinstance(y, torch.Tensor):
        return y.detach().cpu().numpy()
    if isinstance(y, np.ndarray) and y.dtype.kind in "buif":
        return y
    if isinstance(y, (list, tuple)) and y and all(_is_collection(v) for v in y):
        try:
            arr = np.asarray(y)
        except ValueError:
            return None
        if arr.ndim == 2 and arr.dtype.kind in "buif" and np.isin(arr, (0, 1)).all():
            return arr
    return None


def _indicators(arr: np.ndarray, n: int) -> np.ndarray:
    if len(arr) != n:
        raise DataError(f"{n} images but {len(arr)} label rows; pass one row per image")
    if not np.isin(arr, (0, 1)).all():
        raise DataError("multi-label y must hold 0 (absent) and 1 (present) only")
    return arr.astype(np.int64)


def _name_sets(y: Iterable[Any], n: int) -> list[list[Any]]:
    sets = [list(v) if _is_collection(v) else None for v in y]
    if any(s is None for s in sets):
        raise DataError("multi-label y must give a list of class names per image, or "
                        "(N, L) 0/1 columns")
    if len(sets) != n:
        raise DataError(f"{n} images but {len(sets)} label sets; pass one per image")
    return sets  # type: ignore[return-value]
