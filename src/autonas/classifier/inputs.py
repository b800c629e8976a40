"""What ``fit`` was given, as validated training and validation data: images in any
accepted form, labels (single, one-hot or label sets), a held-out validation split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import ImageData, split_indices
from ..data.inputs import encode_fit_labels, encode_labels, read_inputs
from ..data.validate import validate_arrays
from ..errors import ConfigError, DataError
from .label_sets import encode_label_sets, fit_label_sets, looks_multi_label

DEFAULT_VALIDATION_SPLIT = 0.2
"""As AutoKeras: the share of ``x`` held out for validation when no validation_data."""
SINGLE = "single"
"""``label_kind`` of one class per image (label sets are ``indicator`` or ``names``)."""


@dataclass
class FitInputs:
    data: ImageData
    classes: np.ndarray
    label_kind: str
    spec: dict[str, Any]

    @property
    def multi_label(self) -> bool:
        return self.label_kind != SINGLE


def read_fit_inputs(x: Any, y: Any, validation_data: tuple[Any, Any] | None,
                    validation_split: float, *, multi_label: bool | None,
                    num_classes: int | None, image_size: int | None, resize: str,
                    seed: int) -> FitInputs:
    """Decode ``fit``'s arguments; ``multi_label=None`` detects label sets in ``y``."""
    several = looks_multi_label(y) and not is_one_hot(y) if multi_label is None \
        else bool(multi_label)
    if several:
        images, _, spec = read_inputs(x, None, fitting=False, image_size=image_size,
                                      resize=resize)
        classes, y_idx, kind = fit_label_sets(y, len(images), num_classes)
    else:
        y = one_hot_to_index(y) if multi_label is None else y
        images, labels, spec = read_inputs(x, y, fitting=True, image_size=image_size,
                                           resize=resize)
        classes, y_idx = encode_fit_labels(labels)
        kind = SINGLE
    if num_classes is not None and int(num_classes) != len(classes):
        raise DataError(f"num_classes={num_classes}, but y holds {len(classes)} classes "
                        f"({list(classes)[:10]}); pass the matching number or leave "
                        "num_classes=None")
    if validation_data is not None:
        if len(validation_data) != 2:
            raise DataError("validation_data must be a pair (x_val, y_val)")
        x_val, y_val = validation_data
        if several:
            val_images, _, _ = read_inputs(x_val, None, fitting=False, spec=spec)
            val_y = encode_label_sets(y_val, classes, kind, len(val_images))
        else:
            val_images, val_labels, _ = read_inputs(x_val, y_val, fitting=False, spec=spec)
            val_y = encode_labels(val_labels, classes)
        train = (images, torch.as_tensor(y_idx))
        val = (val_images, torch.as_tensor(val_y))
    else:
        if not 0.0 < validation_split < 1.0:
            raise ConfigError(f"validation_split must be between 0 and 1, got "
                              f"{validation_split}; or pass validation_data")
        keep, held = split_indices(torch.as_tensor(y_idx), validation_split, seed=seed)
        if len(held) == 0:
            raise DataError("too few images to hold out a validation split; pass "
                            "validation_data or more images")
        yt = torch.as_tensor(y_idx)
        train, val = (images[keep], yt[keep]), (images[held], yt[held])
    return FitInputs(in_memory_data(train, val, classes, several), classes, kind, spec)


def in_memory_data(train: tuple[torch.Tensor, torch.Tensor],
                   val: tuple[torch.Tensor, torch.Tensor], classes: np.ndarray,
                   multi_label: bool = False) -> ImageData:
    """Validated ImageData with an empty test split (``evaluate`` gets the test data)."""
    out, _ = validate_arrays({"train": train, "val": val}, n_classes=len(classes),
                             where="ImageClassifier", multi_label=multi_label)
    x, y = out["train"]
    task = "multi-label" if multi_label else (
        "binary-class" if len(classes) == 2 else "multi-class")
    return ImageData(
        name="ImageClassifier", train_x=x, train_y=y,
        val_x=out["val"][0], val_y=out["val"][1], test_x=x.new_zeros((0, *x.shape[1:])),
        test_y=y.new_zeros((0, *y.shape[1:])), class_names=[str(c) for c in classes],
        task=task, info={"source": "ImageClassifier.fit"})


def is_one_hot(y: Any) -> bool:
    """(N, K) 0/1 rows holding exactly one 1 each: one-hot single labels, not label sets."""
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind not in "buif":
        return False
    return bool(arr.shape[1] > 1 and np.isin(arr, (0, 1)).all() and (arr.sum(1) == 1).all())


def one_hot_to_index(y: Any) -> Any:
    """One-hot targets (as Keras users pass them) as class indices; anything else as is."""
    if is_one_hot(y):
        arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
        return arr.argmax(axis=1)
    return y
