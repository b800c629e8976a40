"""Checks that turn user arrays into the one tensor layout the rest of autonas relies on.

Every problem raises :class:`~autonas.errors.DataError` naming the array (``train_images``,
``val_labels``, ...), what is wrong and how to fix it, because bad data otherwise surfaces
much later as an obscure shape error or a silently wrong accuracy.

Image layout rules (documented here because they are a contract):

* ``(N, H, W)`` is a grayscale stack and gets a channel axis: ``(N, 1, H, W)``.
* ``(N, A, B, C)``: a channel axis has size 1-4. If the *last* axis has size 1-4 the array
  is read as channel-last ``(N, H, W, C)`` (the MedMNIST / numpy / PIL convention), else if
  axis 1 has size 1-4 it is read as channel-first ``(N, C, H, W)``. When both qualify
  (e.g. ``(N, 3, H, 3)``) channel-last wins; such arrays always have a side of at most
  4 px, so they are then rejected by the minimum-size check, whose message names the
  layout that was assumed.
* 4 channels are treated as RGBA: the alpha channel is dropped with a warning.
  More than 4 channels is an error.
* ``uint8`` images stay ``uint8`` (4x less memory than float32). Other integer images with
  all values in [0, 255] become ``uint8``; integer images outside that range (e.g. 16-bit
  scans) and all float / bool images become ``float32`` with their values unchanged:
  :class:`~autonas.data.transforms.Normalizer` takes care of the scale.
* All splits must share one pixel scale: uint8 and float images in 0-1 (both reach the
  network in 0-1), or float images beyond 1.5 (0-255 and wider) in every split. Mixing
  them (float 0-255 train, uint8 validation) is refused: the network would see scales 255x
  apart and select epochs on data it cannot read.
* Labels must be class indices of shape ``(N,)`` or ``(N, 1)``; they become ``int64 (N,)``.
  Without class names they must be consecutive from 0; a stray label is named with its
  index and the valid range.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from autonas.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
NPZ_KEYS: tuple[str, ...] = (
    "train_images",
    "train_labels",
    "val_images",
    "val_labels",
    "test_images",
    "test_labels",
)
MIN_SIDE = 8
MIN_TRAIN_PER_CLASS = 2
"""Training images a class needs: one-shot searches split train into two halves (weights
and architecture), and each half needs every class."""
UNIT_SCALE_MAX = 1.5
"""Float images whose largest value exceeds this are on a 0-255 (or wider) scale, not 0-1."""
EMPTY_VAL_HELP = (
    "To hold out part of train as validation instead: on the command line add "
    "--set val_fraction=0.1; in Python pass val=None to from_arrays."
)
MAX_CHANNELS = 4
_CHUNK_ELEMS = 1 << 24  # values per chunk in whole-array checks, to bound temporary memory

LAYOUT_HELP = (
    "Expected layout: train_images, train_labels, val_images, val_labels, test_images, "
    "test_labels; images (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {1,3}, labels (N,) "
    "or (N,1) integer class indices."
)


def _as_numpy(a: Any, what: str, where: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as e:  # ragged lists and similar
        raise DataError(f"{where}: {what} cannot be read as an array ({e}). {LAYOUT_HELP}") from e
    if arr.dtype == object:
        raise DataError(
            f"{where}: {what} is an object array (ragged or mixed types), not a numeric "
            f"array. Stack the images into one array of equal-sized images. {LAYOUT_HELP}"
        )
    return arr


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def to_images(x: Any, split: str, *, where: str = "data") -> torch.Tensor:
    """Bring one split's images to (N,C,H,W) uint8/float32, rejecting what would break training."""
    what = f"{split}_images"
    arr = _as_numpy(x, what, where)
    if arr.dtype.kind not in "buif":
        raise DataError(
            f"{where}: {what} has dtype {arr.dtype}, which is not numeric. "
            "Images must be uint8, integer or float arrays."
        )
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
        layout = "(N,H,W)"
    elif arr.ndim == 4:
        last, first = arr.shape[3], arr.shape[1]
        if 1 <= last <= MAX_CHANNELS:
            layout = "(N,H,W,C)"
            # A size-1 channel moves with a free reshape; otherwise one contiguous copy.
            if last == 1:
                arr = arr.reshape(arr.shape[0], 1, arr.shape[1], arr.shape[2])
            else:
                arr = np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
        elif 1 <= first <= MAX_CHANNELS:
            layout = "(N,C,H,W)"
        else:
            raise DataError(
                f"{where}: {what} has shape {_fmt_shape(arr.shape)}: no channel axis of size "
                f"1-{MAX_CHANNELS} at position 1 or 3, i.e. more than {MAX_CHANNELS} channels, "
                "which is not supported. Use grayscale (1) or RGB (3) images laid out as "
                "(N,H,W,C) or (N,C,H,W)."
            )
    else:
        raise DataError(
            f"{where}: {what} has {arr.ndim} dimensions (shape {_fmt_shape(arr.shape)}); "
            "expected 3 (N,H,W) or 4 (N,H,W,C) / (N,C,H,W). 3D volumes and single images "
            "are not supported: stack 2D images along the first axis."
        )
    n, c, h, w = arr.shape
    if n == 0:
        raise DataError(
            f"{where}: {what} is empty (0 images) in split '{split}'. Every split needs at "
            f"least one image. {EMPTY_VAL_HELP if split == 'val' else ''}".rstrip()
        )
    if h < MIN_SIDE or w < MIN_SIDE:
        raise DataError(
            f"{where}: {what} images are {h}x{w} px (shape read as {layout}, giving "
            f"(N,C,H,W) = {_fmt_shape(arr.shape)}); images smaller than {MIN_SIDE} px on a "
            f"side are not supported. Resize them to at least {MIN_SIDE}x{MIN_SIDE}, or check "
            "the axis order if the layout was misread."
        )
    if c == 4:
        warnings.warn(
            f"{where}: {what} has 4 channels; treating them as RGBA and dropping the alpha "
            "channel. Convert to RGB yourself if the 4th channel carries information.",
            UserWarning,
            stacklevel=3,
        )
        arr = np.ascontiguousarray(arr[:, :3])
        c = 3

    if arr.dtype == np.uint8:
        pass
    elif arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        arr = arr.astype(np.uint8) if lo >= 0 and hi <= 255 else arr.astype(np.float32)
    else:  # float or bool
        arr = arr.astype(np.float32, copy=False)
        step = max(1, _CHUNK_ELEMS // (c * h * w))
        for start in range(0, n, step):
            chunk = arr[start : start + step]
            finite = np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1)
            if not finite.all():
                first_bad = start + int(np.argmin(finite))
                raise DataError(
                    f"{where}: {what} contains NaN or inf values (first in image {first_bad} "
                    f"of split '{split}'). Remove or repair those images (e.g. np.nan_to_num) "
                    "before loading."
                )
    if not arr.flags.writeable:
        arr = arr.copy()  # torch.from_numpy needs a writable buffer
    return torch.from_numpy(np.ascontiguousarray(arr))


def to_labels(y: Any, split: str, n_images: int, *, where: str = "data") -> torch.Tensor:
    """Bring one split's labels to int64 (N,) class indices, refusing anything that is not one."""
    what = f"{split}_labels"
    arr = _as_numpy(y, what, where)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        hint = (
            " It looks like one-hot or multi-label targets: multi-label tasks are not "
            "supported yet; for single-label data pass class indices (e.g. y.argmax(1))."
            if arr.ndim == 2
            else ""
        )
        raise DataError(
            f"{where}: {what} has shape {_fmt_shape(arr.shape)}; label arrays must have shape "
            f"(N,) or (N,1) with one integer class index per image.{hint}"
        )
    if arr.dtype.kind not in "buif":
        raise DataError(
            f"{where}: {what} has dtype {arr.dtype}; labels must be integer class indices. "
            "Map class names to 0..K-1 first."
        )
    if len(arr) != n_images:
        raise DataError(
            f"{where}: {what} has {len(arr)} labels but {split}_images has {n_images} images "
            f"(split '{split}'). Each image needs exactly one label: check that images and "
            "labels come from the same split and are not truncated."
        )
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{where}: {what} contains non-integer labels (e.g. {arr[i]!r} at index {i} "
                f"of split '{split}'). Labels must be whole-number class indices 0..K-1; "
                "regression targets and soft labels are not supported."
            )
    labels = arr.astype(np.int64)
    if len(labels) and labels.min() < 0:
        i = int(np.argmin(labels))
        raise DataError(
            f"{where}: {what} contains negative labels (e.g. {labels[i]} at index {i} of split "
            f"'{split}'). Labels must be class indices 0..K-1: remap them (e.g. -1/1 -> 0/1)."
        )
    return torch.from_numpy(labels)


def validate_arrays(
    splits: Mapping[str, tuple[Any, Any]],
    *,
    n_classes: int | None = None,
    where: str = "data",
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], int]:
    """Validate and convert every split, then check that labels agree across splits.

    ``splits`` maps split names (normally ``train``, ``val``, ``test``) to ``(images, labels)``.
    Returns the converted splits and the number of classes (``max label + 1`` unless given).
    Cross-split checks need all splits at once: a class the model never sees in training
    cannot be learned, and a label beyond ``n_classes`` would crash the loss.
    """
    if "train" not in splits:
        raise DataError(f"{where}: no train split given. {LAYOUT_HELP}")
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split, pair in splits.items():
        if pair is None or len(pair) != 2:
            raise DataError(f"{where}: split '{split}' must be an (images, labels) pair.")
        x = to_images(pair[0], split, where=where)
        y = to_labels(pair[1], split, x.shape[0], where=where)
        out[split] = (x, y)

    channels = {s: tuple(x.shape[1:2]) for s, (x, _) in out.items()}
    sizes = {s: tuple(x.shape[2:]) for s, (x, _) in out.items()}
    train_c, train_hw = channels["train"], sizes["train"]
    for s in out:
        if channels[s] != train_c or sizes[s] != train_hw:
            raise DataError(
                f"{where}: {s}_images are {channels[s][0]}x{sizes[s][0]}x{sizes[s][1]} (CxHxW) "
                f"but train_images are {train_c[0]}x{train_hw[0]}x{train_hw[1]}. All splits "
                "must share channels and image size: resize or convert them consistently."
            )

    check_pixel_scales({s: x for s, (x, _) in out.items()}, where)

    max_label = max(int(y.max()) for _, y in out.values())
    if n_classes is None:
        _check_consecutive_labels(out, where)
        n_classes = max_label + 1
    elif max_label >= n_classes:
        for s, (_, y) in out.items():
            bad = y >= n_classes
            if bad.any():
                i = int(torch.nonzero(bad)[0, 0])
                raise DataError(
                    f"{where}: {s}_labels has label {int(y[i])} at index {i} (split '{s}'), "
                    f"outside the valid range 0..{n_classes - 1} of the {n_classes} classes. "
                    "Fix or drop that image's label, pass matching class_names, or remap the "
                    "labels to 0..K-1."
                )
    if n_classes < 2:
        raise DataError(
            f"{where}: only {n_classes} class found; classification needs at least 2 classes. "
            "Check that the labels were read from the right column/file."
        )

    train_counts = torch.bincount(out["train"][1], minlength=n_classes)
    missing = [k for k in range(n_classes) if int(train_counts[k]) == 0]
    if missing:
        elsewhere = {
            s: sorted(set(torch.unique(y).tolist()) & set(missing))
            for s, (_, y) in out.items()
            if s != "train"
        }
        seen = {s: v for s, v in elsewhere.items() if v}
        if seen:
            s, v = next(iter(seen.items()))
            y = out[s][1]
            i = int(torch.nonzero(y == v[0])[0, 0])
            raise DataError(
                f"{where}: {s}_labels has label {v[0]} at index {i} (split '{s}'), but no "
                f"training image has that label (class(es) {v} are missing from train_labels). "
                "A model cannot learn a class it never sees: fix the label, move some of those "
                "images into train, or drop the class."
            )
        raise DataError(
            f"{where}: class index(es) {missing} (below n_classes={n_classes}) are missing "
            "from train_labels (split 'train'). Labels must use every index 0..K-1: remap "
            "them to consecutive indices, or give each class training images."
        )
    return out, n_classes


def check_train_counts(train_labels: torch.Tensor, n_classes: int, where: str,
                       hint: str = "") -> None:
    """Every class needs ``MIN_TRAIN_PER_CLASS`` training images for a search (which splits
    train in two); fewer would fail deep inside the search with an empty batch. Loading
    alone does not need this, so callers that search check it."""
    counts = torch.bincount(train_labels.cpu(), minlength=n_classes)
    few = {k: int(counts[k]) for k in range(n_classes) if int(counts[k]) < MIN_TRAIN_PER_CLASS}
    if few:
        raise DataError(
            f"{where}: too few training images: train_labels per class {few} (class: count), "
            f"and each class needs at least {MIN_TRAIN_PER_CLASS} "
            "(the search splits the training images into two halves, each needing every "
            f"class), and many more for a useful model. Add training images.{hint}"
        )


def _scale(x: torch.Tensor) -> tuple[str, float]:
    """(scale name, largest value) of one split as training will see it: uint8 is divided
    by 255, float is used as it is."""
    if x.dtype == torch.uint8:
        return "0-255 integers (uint8, divided by 255 in training)", 255.0
    top = float(x.max()) if x.numel() else 0.0
    if top > UNIT_SCALE_MAX:
        return f"float values up to {top:g} (used unscaled)", top
    return f"float values in 0-1 (max {top:g})", top


def check_pixel_scales(images: Mapping[str, torch.Tensor], where: str = "data") -> None:
    """Refuse splits on different pixel scales (e.g. float 0-255 train, uint8 val): uint8
    images are divided by 255 and float ones are not, so such splits would reach the
    network on scales 255x apart and train a model that sees another world at validation."""
    kinds = {}
    for split, x in images.items():
        name, top = _scale(x)
        unit = x.dtype != torch.uint8 and top <= UNIT_SCALE_MAX
        kinds[split] = (unit or x.dtype == torch.uint8, name)
    if len({k for k, _ in kinds.values()}) <= 1:
        return
    listing = "; ".join(f"{s}_images: {name}" for s, (_, name) in kinds.items())
    raise DataError(
        f"{where}: the splits have different pixel scales ({listing}). Convert every split "
        "the same way: all uint8 0-255 (e.g. np.clip(x, 0, 255).astype(np.uint8)), or all "
        "float in 0-1 (divide 0-255 float images by 255)."
    )


def _check_consecutive_labels(out: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                              where: str) -> None:
    """Labels must be 0..K-1 without gaps: a stray label such as 7 among 0/1 would otherwise
    create empty classes 2..6. Name the stray label, where it is, and the valid range (the
    gap-free run of labels from 0)."""
    present = sorted(set().union(*(torch.unique(y).tolist() for _, y in out.values())))
    valid = 0
    while valid < len(present) and present[valid] == valid:
        valid += 1
    if valid == len(present):
        return
    for s, (_, y) in out.items():
        bad = y >= valid
        if bad.any():
            i = int(torch.nonzero(bad)[0, 0])
            label = int(y[i])
            if valid == 0:
                problem = f"but the labels start at {present[0]}, not 0"
            else:
                problem = f"outside the valid range 0..{valid - 1}"
            raise DataError(
                f"{where}: {s}_labels has label {label} at index {i} (split '{s}'), "
                f"{problem}: the labels {present} are not consecutive class indices "
                "0..K-1. Fix that label if it is a mistake, or remap the labels to "
                "consecutive indices (e.g. np.unique(y, return_inverse=True)[1])."
            )


def check_npz_keys(keys: list[str], where: str) -> None:
    """Fail early with the full expected layout rather than a KeyError on the first lookup."""
    missing = [k for k in NPZ_KEYS if k not in keys]
    if missing:
        raise DataError(
            f"{where}: npz file is missing keys {missing} (found {sorted(keys)}). "
            f"{LAYOUT_HELP} Save it with np.savez(path, train_images=..., train_labels=..., "
            "val_images=..., val_labels=..., test_images=..., test_labels=...)."
        )
