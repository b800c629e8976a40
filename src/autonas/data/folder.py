"""Image files on disk as datasets: one folder per class, or a CSV naming files and labels.

Decisions a user should know about:

* **Resizing keeps the aspect ratio.** ``resize="crop"`` (default) cuts the largest centred
  square and scales it to ``image_size`` (the usual evaluation transform of ImageNet models:
  borders are lost, nothing is distorted); ``resize="pad"`` scales the whole image into the
  square and fills the rest with black (nothing is lost, the object gets smaller).
* **Channels**: ``grayscale=None`` keeps the mode most files have (grayscale when most
  files are 1-channel, else RGB); ``True`` / ``False`` force one. Alpha is dropped;
  16-bit grayscale is scaled to 8 bits.
* **Splits** are stratified and seeded: ``test_fraction`` of every class goes to test,
  ``val_fraction`` to validation, the rest to training (a class with a single image
  stays in training).
* File lists follow torchvision's ``ImageFolder``: classes are the sorted subfolder names,
  files with image extensions are used (recursively), anything else is ignored.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from autonas.data.dataset import ImageData
from autonas.data.loader import split_indices
from autonas.data.validate import MIN_TRAIN_PER_CLASS
from autonas.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
                    ".gif")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
RESIZE_MODES = ("crop", "pad")
MIN_IMAGE_SIZE = 8


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------- decoding


def _open(path: Path, draft: tuple[str, int] | None = None) -> Image.Image:
    """Decode a file; ``draft`` (mode, size) lets JPEG decode at a reduced scale (fast)."""
    try:
        img = Image.open(path)
        if draft is not None and img.format == "JPEG":
            img.draft(draft[0], (draft[1], draft[1]))
        img.load()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found; check the path or remove the "
                        "entry") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot be read as an image ({exc}); delete or replace "
                        "the file") from None
    return img


def _peek_mode(path: Path) -> str:
    """The file's colour mode from its header (cheap: pixels are not decoded)."""
    try:
        with Image.open(path) as img:
            return img.mode
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found; check the path or remove the "
                        "entry") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as an image ({exc}); delete or replace "
                        "the file") from None


def majority_grayscale(modes: Iterable[str]) -> bool:
    """True when most files are single-channel (ties go to RGB, which loses nothing)."""
    counts = Counter(m in GRAY_MODES for m in modes)
    return counts[True] > counts[False]


def _to_mode(img: Image.Image, grayscale: bool) -> Image.Image:
    if img.mode.startswith("I") or img.mode == "F":
        # 16/32-bit grayscale: PIL's convert("L") would clip, so rescale to 8 bits.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    target = "L" if grayscale else "RGB"
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")  # drop alpha by discarding the band, not by blending
        img = img.convert("RGB")
    return img if img.mode == target else img.convert(target)


def _resize(img: Image.Image, size: int, resize: str) -> Image.Image:
    if img.size == (size, size):
        return img
    method = Image.Resampling.BILINEAR
    if resize == "crop":
        return ImageOps.fit(img, (size, size), method=method)
    return ImageOps.pad(img, (size, size), method=method, color=0)


def load_image(source: str | Path | Image.Image, image_size: int | None, grayscale: bool,
               resize: str = "crop") -> np.ndarray:
    """One image as uint8 (C, H, W), converted and resized the way training data is."""
    if isinstance(source, Image.Image):
        img = source
        where = "PIL image"
    else:
        path = Path(source)
        draft = None if image_size is None else ("L" if grayscale else "RGB", image_size)
        img = _open(path, draft)
        where = str(path)
    try:
        img = _to_mode(img, grayscale)
        if image_size is not None:
            img = _resize(img, image_size, resize)
        arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot be decoded ({exc}); delete or replace the "
                        "file") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_images(sources: Sequence[str | Path | Image.Image], image_size: int | None = 64,
                grayscale: bool | None = None, resize: str = "crop") -> tuple[np.ndarray, bool]:
    """Decode files or PIL images into one uint8 (N, C, H, W) array.

    ``image_size=None`` keeps the images' own size, which they must then share. Returns the
    array and whether it is grayscale (decided by majority when ``grayscale`` is None).
    """
    if resize not in RESIZE_MODES:
        raise DataError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if image_size is not None and image_size < MIN_IMAGE_SIZE:
        raise DataError(f"image_size must be at least {MIN_IMAGE_SIZE} px, got {image_size}")
    if not sources:
        raise DataError("no images to load: pass at least one image file or PIL image")
    if grayscale is None:
        modes = [s.mode if isinstance(s, Image.Image) else _peek_mode(Path(s)) for s in sources]
        grayscale = majority_grayscale(modes)
    arrays = [load_image(s, image_size, grayscale, resize) for s in sources]
    shapes = Counter(a.shape for a in arrays)
    if len(shapes) > 1:
        (common, _), = shapes.most_common(1)
        odd = next(i for i, a in enumerate(arrays) if a.shape != common)
        name = sources[odd] if not isinstance(sources[odd], Image.Image) else f"image {odd}"
        raise DataError(f"{name} is {arrays[odd].shape[2]}x{arrays[odd].shape[1]} px but most "
                        f"images are {common[2]}x{common[1]}: pass an image size so every "
                        "image is resized to the same square")
    return np.stack(arrays), grayscale


# ----------------------------------------------------------------------------- datasets


def _split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
           ) -> dict[str, np.ndarray]:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < f < 1.0:
            raise DataError(f"{name} must be between 0 and 1 (exclusive), got {f}")
    if val_fraction + test_fraction >= 1.0:
        raise DataError(f"val_fraction + test_fraction must leave images for training, got "
                        f"{val_fraction} + {test_fraction}")
    y = torch.as_tensor(labels)
    rest, test = split_indices(y, test_fraction, seed=seed)
    inner_train, inner_val = split_indices(y[rest], val_fraction / (1.0 - test_fraction),
                                           seed=seed + 1)
    return {"train": rest[inner_train].numpy(), "val": rest[inner_val].numpy(),
            "test": test.numpy()}


def _class_order(values: Sequence[str]) -> list[str]:
    """Sorted class names; numerically when every name is a number ("2" before "10")."""
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def build_dataset(files: Sequence[Path], labels: Sequence[str], *, name: str,
                  image_size: int = 64, grayscale: bool | None = None, resize: str = "crop",
                  val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0,
                  source: dict[str, Any] | None = None, root: Path | None = None) -> ImageData:
    """Labelled image files -> a stratified, seeded train/val/test :class:`ImageData`."""
    classes = _class_order(labels)
    if len(classes) < 2:
        raise DataError(f"{name}: every image has the label {classes[0]!r}; classification "
                        "needs at least 2 classes (check the label column or the class "
                        "folders)")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in labels], dtype=np.int64)
    parts = _split(y, val_fraction, test_fraction, seed)
    x, gray = load_images(files, image_size, grayscale, resize)  # unreadable files first
    _check_split_sizes(parts, y, classes, name)
    rel = [str(f.relative_to(root)) if root is not None else str(f) for f in files]
    info = {
        "source": {**(source or {}), "image_size": image_size, "grayscale": gray,
                   "resize": resize, "val_fraction": val_fraction,
                   "test_fraction": test_fraction, "seed": seed},
        "files": {s: [rel[i] for i in idx] for s, idx in parts.items()},
    }
    return ImageData(
        name=name,
        train_x=torch.from_numpy(x[parts["train"]]), train_y=torch.from_numpy(y[parts["train"]]),
        val_x=torch.from_numpy(x[parts["val"]]), val_y=torch.from_numpy(y[parts["val"]]),
        test_x=torch.from_numpy(x[parts["test"]]), test_y=torch.from_numpy(y[parts["test"]]),
        class_names=classes,
        task="binary-class" if len(classes) == 2 else "multi-class",
        info=info,
    )


MIN_PER_CLASS = 4
"""Images a class needs: two in train (a search splits train in two), one each in
validation and test."""


def _check_split_sizes(parts: dict[str, np.ndarray], y: np.ndarray, classes: list[str],
                       name: str) -> None:
    """Every split needs images: an empty validation split has no metric to select by and
    an empty test split no result. Say how many images are needed."""
    empty = [s for s in ("train", "val", "test") if len(parts[s]) == 0]
    train_counts = np.bincount(y[parts["train"]], minlength=len(classes))
    if not empty and train_counts.min() >= MIN_TRAIN_PER_CLASS:
        return
    problem = (f"the {' and '.join(empty)} split would be empty" if empty else
               f"some classes would have fewer than {MIN_TRAIN_PER_CLASS} training images")
    counts = np.bincount(y, minlength=len(classes))
    few = {c: int(n) for c, n in zip(classes, counts) if n < MIN_PER_CLASS}
    raise DataError(
        f"{name}: {len(y)} images are too few to split into train, validation and test "
        f"({problem}). Each class needs at least {MIN_PER_CLASS} images (2 for training, "
        f"1 each for validation and test), and many more for useful results; classes with "
        f"fewer: {few}. Add images to those classes."
    )


def from_folder(path: str | Path, image_size: int = 64, grayscale: bool | None = None, *,
                val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0,
                resize: str = "crop") -> ImageData:
    """A dataset from ``path/<class name>/<image files>`` (torchvision ImageFolder layout)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; pass a folder with one subfolder of "
                        "images per class")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: has no subfolders; put the images of each class in their "
                        f"own subfolder (e.g. {root}/benign/*.png, {root}/malignant/*.png)")
    files: list[Path] = []
    labels: list[str] = []
    for d in class_dirs:
        found = sorted(f for f in d.rglob("*") if f.is_file() and is_image_file(f)
                       and not f.name.startswith("."))
        if not found:
            raise DataError(f"{d}: class folder holds no image files ({', '.join(IMAGE_EXTENSIONS)}"
                            "); add images or remove the folder")
        files += found
        labels += [d.name] * len(found)
    return build_dataset(files, labels, name=root.resolve().name, image_size=image_size,
                         grayscale=grayscale, resize=resize, val_fraction=val_fraction,
                         test_fraction=test_fraction, seed=seed, root=root,
                         source={"kind": "folder", "path": str(root.resolve())})


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as a UTF-8 text file ({exc})") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if not columns:
        raise DataError(f"{path}: the CSV has no header row; its first line must name the "
                        "columns")
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            for row in reader]
    if not rows:
        raise DataError(f"{path}: the CSV has a header but no rows")
    return columns, rows


def _guess_image_column(columns: list[str], rows: list[dict[str, str]], path: Path) -> str:
    for col in columns:
        sample = [r.get(col, "") for r in rows[:20]]
        if sample and all(is_image_file(v) for v in sample):
            return col
    raise DataError(f"{path}: no column holds image file names; pass image_col (--image-col). "
                    f"Columns: {', '.join(columns)}")


def _inside(image_dir: Path, value: str, csv_path: Path, row: int, col: str) -> Path:
    """The file a CSV cell names, refusing names that lead outside the image folder."""
    base = os.path.abspath(image_dir)
    full = os.path.normpath(os.path.join(base, value))
    if os.path.commonpath([base, full]) != base:
        raise DataError(f"{csv_path}: row {row} column {col!r} names {value!r}, which lies "
                        f"outside the image folder {image_dir}; image paths must be relative "
                        "to the image folder (no '..' or absolute paths elsewhere)")
    return Path(full)


def from_csv(csv_file: str | Path, image_dir: str | Path | None = None,
             image_col: str | None = None, label_col: str = "label", image_size: int = 64,
             grayscale: bool | None = None, *, val_fraction: float = 0.15,
             test_fraction: float = 0.15, seed: int = 0, resize: str = "crop") -> ImageData:
    """A dataset from a CSV with an image-file column and a label column, plus the folder
    the file names are relative to (default: the CSV's folder). ``image_col=None`` picks
    the first column whose values are image file names."""
    path = Path(csv_file).expanduser()
    columns, rows = _read_csv(path)
    folder = Path(image_dir).expanduser() if image_dir is not None else path.parent
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found; pass the folder the CSV's file "
                        "names are relative to")
    if image_col is None:
        image_col = _guess_image_column(columns, rows, path)
    for what, col in (("image", image_col), ("label", label_col)):
        if col not in columns:
            raise DataError(f"{path}: no {what} column {col!r}; available columns: "
                            f"{', '.join(columns)}")
    files: list[Path] = []
    labels: list[str] = []
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        name, label = row.get(image_col, ""), row.get(label_col, "")
        if not name:
            raise DataError(f"{path}: row {i} has no file name in column {image_col!r}; fill "
                            "it in or delete the row")
        if not label:
            raise DataError(f"{path}: row {i} ({name}) has no label in column {label_col!r}; "
                            "fill it in or delete the row")
        file = _inside(folder, name, path, i, image_col)
        if not file.is_file():
            raise DataError(f"{file}: image file not found (row {i} of {path}); check "
                            "--image-dir or the file name")
        files.append(file)
        labels.append(label)
    return build_dataset(files, labels, name=path.stem, image_size=image_size,
                         grayscale=grayscale, resize=resize, val_fraction=val_fraction,
                         test_fraction=test_fraction, seed=seed, root=folder,
                         source={"kind": "csv", "csv": str(path.resolve()),
                                 "image_dir": str(folder.resolve()), "image_col": image_col,
                                 "label_col": label_col})


def load_source(source: dict[str, Any], seed: int = 0) -> ImageData:
    """Rebuild a dataset from the ``source`` mapping a run's config.yaml records."""
    opts = dict(source)
    kind = opts.pop("kind", None)
    common = {k: opts.pop(k) for k in ("image_size", "grayscale", "val_fraction",
                                       "test_fraction", "resize") if k in opts}
    common["seed"] = opts.pop("seed", seed)
    if kind == "folder":
        return from_folder(opts.pop("path"), **common)
    if kind == "csv":
        return from_csv(opts.pop("csv"), opts.pop("image_dir", None), opts.pop("image_col", None),
                        opts.pop("label_col"), **common)
    raise DataError(f"unknown data source kind {kind!r} in the config; use 'folder' or 'csv'")
