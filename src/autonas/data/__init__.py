"""Data: load, validate, batch and augment image classification datasets.

Every source (MedMNIST flag, .npz file, in-memory arrays) becomes an :class:`ImageData`
with the same tensor layout, so the search and training code never special-cases data.
"""

from __future__ import annotations

from pathlib import Path

from autonas.data.dataset import ImageData, from_arrays, from_npz, read_npz
from autonas.data.download import md5sum
from autonas.data.folder import from_csv, from_folder, load_images
from autonas.data.loader import BatchLoader, split_indices, subset
from autonas.data.medmnist import SIZES, load_medmnist, medmnist_flags
from autonas.data.transforms import Augment, Normalizer, to_float
from autonas.data.validate import validate_arrays

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
) -> ImageData:
    """One entry point for the CLI: a path to an .npz file, or a MedMNIST flag (any case)."""
    if isinstance(source, Path):
        return from_npz(source)
    text = str(source).strip()
    path = Path(text).expanduser()
    if text.lower().endswith(".npz") or path.is_file():
        return from_npz(path)
    return load_medmnist(text.lower(), size=size, root=root, download=download)
