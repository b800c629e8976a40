"""Data: load, validate, batch and augment image classification datasets.

Every source (MedMNIST flag, .npz file, in-memory arrays) becomes an :class:`ImageData`
with the same tensor layout, so the search and training code never special-cases data.
"""

from __future__ import annotations

import os
from pathlib import Path

from autonas.data.dataset import ImageData, from_arrays, from_npz, read_npz
from autonas.data.download import md5sum
from autonas.data.folder import from_csv, from_folder, load_images
from autonas.data.loader import BatchLoader, split_indices, subset
from autonas.data.medmnist import SIZES, load_medmnist, medmnist_flags
from autonas.data.transforms import Augment, Normalizer, to_float
from autonas.data.validate import validate_arrays
from autonas.errors import DataError

__all__ = [
    "SIZES",
    "Augment",
    "BatchLoader",
    "ImageData",
    "Normalizer",
    "from_arrays",
    "from_csv",
    "from_folder",
    "from_npz",
    "load_dataset",
    "load_images",
    "load_medmnist",
    "md5sum",
    "medmnist_flags",
    "read_npz",
    "split_indices",
    "subset",
    "to_float",
    "validate_arrays",
]


def load_dataset(
    source: str | Path,
    *,
    size: int = 28,
    root: str | Path | None = None,
    download: bool = True,
    val_fraction: float | None = None,
) -> ImageData:
    """One entry point for the CLI: a path to an .npz file, or a MedMNIST flag (any case).

    Text that looks like a path (a folder separator, a leading ``.`` or ``~``, an ``.npz``
    suffix) or names an existing file is a path, so a mistyped path says "file not found"
    rather than "unknown flag". ``val_fraction`` holds out that share of train as the
    validation split instead of the file's.
    """
    if isinstance(source, Path):
        return from_npz(source, val_fraction=val_fraction)
    text = str(source).strip()
    path = Path(text).expanduser()
    looks_like_path = (
        text.lower().endswith(".npz")
        or any(sep in text for sep in ("/", "\\", os.sep))
        or text.startswith((".", "~"))
    )
    if looks_like_path or path.exists():
        return from_npz(path, val_fraction=val_fraction)
    if val_fraction is not None:
        raise DataError(
            f"val_fraction applies to .npz files and image folders; MedMNIST sets such as "
            f"{text!r} come with their own validation split"
        )
    return load_medmnist(text.lower(), size=size, root=root, download=download)
