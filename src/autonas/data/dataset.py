"""The in-memory dataset type every data source becomes, and its array and npz constructors."""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autonas.data.download import md5sum
from autonas.data.loader import split_indices
from autonas.data.validate import NPZ_KEYS, SPLITS, check_npz_keys, validate_arrays
from autonas.errors import DataError

TASKS = ("binary-class", "multi-class")


@dataclass
class ImageData:
    """Validated train/val/test image tensors plus metadata: the one shape every source becomes.

    Images are (N, C, H, W), uint8 when the source is uint8 (to save memory) or float32;
    labels are int64 (N,) with values in [0, n_classes). ``hflip`` / ``vflip`` say whether
    flips preserve labels for this data, which only the data's owner can know.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    task: str = "multi-class"
    info: dict = field(default_factory=dict)
    hflip: bool = True
    vflip: bool = False

    def __post_init__(self) -> None:
        # Cheap structural checks only: full validation happens in the constructors.
        if self.task not in TASKS:
            raise DataError(f"{self.name}: task {self.task!r} is not supported; use {TASKS}.")
        shape = None
        for split in SPLITS:
            x, y = self.split(split)
            if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise DataError(
                    f"{self.name}: split '{split}' has images {tuple(x.shape)} and labels "
                    f"{tuple(y.shape)}; expected (N,C,H,W) and (N,). Build ImageData with "
                    "from_arrays or from_npz, which convert and validate."
                )
            if shape is None:
                shape = tuple(x.shape[1:])
            elif tuple(x.shape[1:]) != shape:
                raise DataError(f"{self.name}: split '{split}' image shape differs from train.")
        if len(self.class_names) < 2:
            raise DataError(f"{self.name}: needs at least 2 class names, got {self.class_names}.")
        self._warn_missing_classes()

    def _warn_missing_classes(self) -> None:
        """A validation (or test) split without some class makes its AUC undefined and its
        accuracy say little about that class: say which classes are missing, at load."""
        for split in ("val", "test"):
            _, y = self.split(split)
            if len(y) == 0:
                continue
            counts = torch.bincount(y.cpu(), minlength=self.n_classes)
            missing = [self.class_names[k] for k in range(self.n_classes) if int(counts[k]) == 0]
            if not missing:
                continue
            effect = (" Its AUC is undefined, so epochs are selected by validation loss."
                      if split == "val" and len(missing) >= self.n_classes - 1 else "")
            warnings.warn(
                f"{self.name}: the {split} split has no images of class(es) {missing} "
                f"({len(y)} images in all).{effect} Give every class some {split} images "
                "for metrics that cover it"
                + (" (e.g. --set val_fraction=0.1 holds out a stratified share of train)."
                   if split == "val" else "."),
                UserWarning,
                stacklevel=3,
            )

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {list(SPLITS)}.")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def class_counts(self, split: str = "train") -> list[int]:
        """Per-class counts: imbalance drives the choice of metric and loss weighting."""
        _, y = self.split(split)
        return torch.bincount(y.cpu(), minlength=self.n_classes).tolist()

    def summary(self) -> dict[str, Any]:
        """A JSON-able description for run records and the CLI."""
        return {
            "name": self.name,
            "task": self.task,
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
            "channels": self.channels,
            "image_size": list(self.image_size),
            "dtype": str(self.train_x.dtype).replace("torch.", ""),
            "pixel_max": (255.0 if self.train_x.dtype == torch.uint8 or not len(self.train_x)
                          else float(self.train_x.max())),
            "sizes": {s: int(self.split(s)[0].shape[0]) for s in SPLITS},
            "class_counts": {s: self.class_counts(s) for s in SPLITS},
            "hflip": self.hflip,
            "vflip": self.vflip,
            "license": self.info.get("license"),
        }


def _infer_task(n_classes: int) -> str:
    return "binary-class" if n_classes == 2 else "multi-class"


def from_arrays(
    train: tuple[Any, Any],
    val: tuple[Any, Any] | None,
    test: tuple[Any, Any],
    *,
    class_names: list[str] | None = None,
    name: str = "arrays",
    task: str | None = None,
    info: dict | None = None,
    seed: int = 0,
    hflip: bool = True,
    vflip: bool = False,
    val_fraction: float = 0.1,
) -> ImageData:
    """Build validated ImageData from ``(images, labels)`` pairs of numpy arrays or tensors.

    With ``val=None`` a stratified, seeded ``val_fraction`` of train is held out as
    validation, so model selection never touches the test split.
    """
    if test is None:
        raise DataError(
            f"{name}: a test split is required so final results are measured on data never "
            "used for search or model selection. Pass test=(images, labels)."
        )
    splits: dict[str, Any] = {"train": train, "test": test}
    if val is not None:
        splits["val"] = val
    n_given = len(class_names) if class_names is not None else None
    out, n_classes = validate_arrays(splits, n_classes=n_given, where=name)
    info = dict(info or {})
    if val is None:
        tx, ty = out["train"]
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"{name}: val_fraction must be in (0, 1), got {val_fraction}")
        idx_tr, idx_val = split_indices(ty, val_fraction, seed=seed)
        if len(idx_val) == 0:
            raise DataError(
                f"{name}: too few training images ({len(ty)}) to hold out validation images: "
                "each class needs at least 2 training images; add images or pass a "
                "validation split."
            )
        out["val"] = (tx[idx_val], ty[idx_val])
        out["train"] = (tx[idx_tr], ty[idx_tr])
        info.setdefault("val_from_train", {"fraction": val_fraction, "seed": seed,
                                           "stratified": True})
        if torch.bincount(out["train"][1], minlength=n_classes).min() == 0:  # pragma: no cover
            raise DataError(f"{name}: holding out validation data left a class without train data.")
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    task = task or _infer_task(n_classes)
    if task not in TASKS:
        raise DataError(
            f"{name}: task {task!r} is not supported; use 'binary-class' or 'multi-class' "
            "(multi-label and regression tasks are not supported yet)."
        )
    return ImageData(
        name=name,
        train_x=out["train"][0],
        train_y=out["train"][1],
        val_x=out["val"][0],
        val_y=out["val"][1],
        test_x=out["test"][0],
        test_y=out["test"][1],
        class_names=[str(c) for c in names],
        task=task,
        info=info,
        hflip=hflip,
        vflip=vflip,
    )


def read_npz(path: str | Path, *, need_val: bool = True) -> dict[str, np.ndarray]:
    """Read the six MedMNIST-layout arrays, turning every way a file can be bad into a
    DataError (``need_val=False``: the validation arrays may be absent)."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise DataError(
            f"{where}: file not found. Check the path (relative paths start at {Path.cwd()})."
        )
    if not path.is_file():
        raise DataError(f"{where}: is not a file. Pass the path of an .npz file.")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            head = f.read(6)
        what = ("a single .npy array" if head == b"\x93NUMPY" else
                "empty" if not head else "not an .npz archive (a zip of .npy arrays)")
        raise DataError(
            f"{where}: is {what}. autonas reads .npz files in the MedMNIST layout: save the "
            "splits with np.savez(path, train_images=..., train_labels=..., val_images=..., "
            "val_labels=..., test_images=..., test_labels=...)."
        )
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(
            f"{where}: cannot be read as an .npz archive ({type(e).__name__}); it may be "
            "truncated or damaged: re-create it with np.savez / np.savez_compressed."
        ) from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(
            f"{where}: is a single .npy array, not an .npz archive. Save the splits with "
            "np.savez(path, train_images=..., train_labels=..., ...)."
        )
    with loaded:
        keys = list(loaded.files)
        if not need_val:
            keys += [k for k in ("val_images", "val_labels") if k not in keys]
        check_npz_keys(keys, where)
        arrays = {}
        for key in NPZ_KEYS:
            if key not in loaded.files:
                continue
            try:
                arrays[key] = loaded[key]
            except ValueError as e:  # object arrays need pickle, which we never enable
                raise DataError(
                    f"{where}: array {key!r} is stored as a pickled object array, which is not "
                    "loaded for safety. Save numeric arrays (e.g. uint8 images, int labels)."
                ) from e
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(f"{where}: array {key!r} is corrupt ({e}); re-create it.") from e
    return arrays


def _from_npz(
    path: Path,
    name: str,
    *,
    class_names: list[str] | None = None,
    task: str | None = None,
    info: dict | None = None,
    hflip: bool = True,
    vflip: bool = False,
    val_fraction: float | None = None,
) -> ImageData:
    """``val_fraction``: hold out that share of train as validation, ignoring the file's
    validation split (which may then be empty or absent)."""
    arrays = read_npz(path, need_val=val_fraction is None)
    val = None
    if val_fraction is None:
        val = (arrays.pop("val_images"), arrays.pop("val_labels"))
    return from_arrays(
        (arrays.pop("train_images"), arrays.pop("train_labels")),
        val,
        (arrays.pop("test_images"), arrays.pop("test_labels")),
        class_names=class_names,
        name=name,
        task=task,
        info=info,
        hflip=hflip,
        vflip=vflip,
        val_fraction=0.1 if val_fraction is None else val_fraction,
    )


def from_npz(path: str | Path, *, name: str | None = None,
             val_fraction: float | None = None) -> ImageData:
    """Load a MedMNIST-layout file; its MD5 goes into ``info`` so runs record their exact data.
    ``val_fraction`` holds out that share of train as validation instead of the file's."""
    path = Path(path).expanduser()
    data = _from_npz(path, name or path.stem, info={"source": "npz", "path": str(path.resolve())},
                     val_fraction=val_fraction)
    data.info["md5"] = md5sum(path)
    return data
