"""Folder and CSV image datasets built from PNG files the tests write."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autonas.config import RunConfig
from autonas.data import from_csv, from_folder, load_images
from autonas.data.folder import load_source
from autonas.errors import DataError
from autonas.pipeline import load_data


def _png(path: Path, value: int, size: tuple[int, int] = (12, 12), mode: str = "L") -> Path:
    """A flat image of ``value`` (PIL size is width x height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)
    return path


def make_folder(root: Path, counts: dict[str, int], mode: str = "L") -> Path:
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            _png(root / name / f"{name}_{i:02d}.png", 40 * c + i, mode=mode)
    return root


# ----------------------------------------------------------------------------- folders


def test_folder_classes_splits_and_pixels(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"benign": 20, "malignant": 10, "normal": 10})
    (root / "benign" / "notes.txt").write_text("not an image")  # ignored, like ImageFolder
    data = from_folder(root, image_size=8, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert data.class_names == ["benign", "malignant", "normal"]
    assert data.task == "multi-class" and data.channels == 1 and data.image_size == (8, 8)
    assert data.train_x.dtype == torch.uint8
    # stratified: every class in every split, in proportion
    assert data.class_counts("test") == [4, 2, 2]
    # val_fraction is of the whole: 0.2 / 0.8 = 25% of what the test split left
    assert data.class_counts("val") == [4, 2, 2]
    assert data.class_counts("train") == [12, 6, 6]
    files = data.info["files"]
    everything = files["train"] + files["val"] + files["test"]
    assert len(everything) == len(set(everything)) == 40
    # pixels and labels belong together: the flat value encodes the class and the index
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        for img, label, name in zip(x, y, files[split]):
            cls, idx = Path(name).stem.rsplit("_", 1)
            assert data.class_names[int(label)] == cls == Path(name).parent.name
            assert int(img[0, 0, 0]) == 40 * int(label) + int(idx)


def test_folder_split_is_seeded(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"a": 12, "b": 12})
    a = from_folder(root, image_size=8, seed=3).info["files"]
    b = from_folder(root, image_size=8, seed=3).info["files"]
    c = from_folder(root, image_size=8, seed=4).info["files"]
    assert a == b
    assert a["test"] != c["test"]


def test_majority_mode_and_forced_mode(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"a": 4, "b": 4})
    _png(root / "a" / "colour.png", 100, mode="RGB")
    assert from_folder(root, image_size=8).channels == 1  # 8 gray files, 1 RGB
    assert from_folder(root, image_size=8, grayscale=False).channels == 3
    root2 = make_folder(tmp_path / "rgb", {"a": 4, "b": 4}, mode="RGBA")
    data = from_folder(root2, image_size=8)
    assert data.channels == 3  # alpha dropped
    assert from_folder(root2, image_size=8, grayscale=True).channels == 1


def test_resize_crop_and_pad(tmp_path: Path) -> None:
    """A 24x12 (WxH) image: dark left half, bright right half, a gray stripe at each end.
    Crop keeps the centre square (no stripes, half dark, half bright); pad keeps everything
    (stripes included) and adds black bands above and below."""
    arr = np.zeros((12, 24), dtype=np.uint8)
    arr[:, 12:] = 200
    arr[:, :2] = 90
    arr[:, 22:] = 90
    path = tmp_path / "wide.png"
    Image.fromarray(arr).save(path)
    crop, _ = load_images([path], 12, grayscale=True, resize="crop")
    assert crop.shape == (1, 1, 12, 12)
    assert set(np.unique(crop[0, 0, :, :5])) == {0} and set(np.unique(crop[0, 0, :, 7:])) == {200}
    pad, _ = load_images([path], 12, grayscale=True, resize="pad")
    assert pad.shape == (1, 1, 12, 12)
    assert pad[0, 0, :3].max() == 0 and pad[0, 0, -3:].max() == 0  # black bands
    assert pad[0, 0, 6, 0] > 50 and pad[0, 0, 6, -1] > 50  # the stripes survive


def test_sixteen_bit_png_is_scaled(tmp_path: Path) -> None:
    arr = np.full((10, 10), 65535 // 2, dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    x, gray = load_images([path], None, resize="crop")
    assert gray and x.shape == (1, 1, 10, 10)
    assert abs(int(x[0, 0, 0, 0]) - 127) <= 1


# ----------------------------------------------------------------------------- CSV


def make_hands(tmp_path: Path, n: int = 24) -> tuple[Path, Path]:
    """A CSV shaped like 11K Hands' HandInfo.csv: id, age, gender, ..., imageName."""
    image_dir = tmp_path / "Hands"
    rows = []
    for i in range(n):
        gender = "male" if i % 3 else "female"
        name = f"Hand_{i:07d}.png" if i % 2 else f"sub/Hand_{i:07d}.png"
        _png(image_dir / name, 30 if gender == "male" else 220, size=(16, 12), mode="RGB")
        rows.append({"id": 1000 + i, "age": 20 + i, "gender": gender,
                     "skinColor": "medium", "aspectOfHand": "dorsal right", "imageName": name})
    csv_path = tmp_path / "HandInfo.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return csv_path, image_dir


def test_csv_dataset(tmp_path: Path) -> None:
    csv_path, image_dir = make_hands(tmp_path)
    data = from_csv(csv_path, image_dir, "imageName", "gender", image_size=8, seed=1)
    assert data.class_names == ["female", "male"]
    assert data.channels == 3 and data.image_size == (8, 8)
    assert sum(len(data.split(s)[1]) for s in ("train", "val", "test")) == 24
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        assert len(set(y.tolist())) == 2, split  # stratified: both genders everywhere
        # labels follow the pixels: females were written bright
        assert all((img.float().mean() > 128) == (data.class_names[int(lab)] == "female")
                   for img, lab in zip(x, y))
    assert data.info["source"]["kind"] == "csv"
    # the image column is found when not given
    guessed = from_csv(csv_path, image_dir, label_col="gender", image_size=8, seed=1)
    assert guessed.info["files"] == data.info["files"]


def test_csv_source_rebuilds_the_same_data(tmp_path: Path) -> None:
    """What `autonas run --csv` records in config.yaml gives back the same splits."""
    csv_path, image_dir = make_hands(tmp_path)
    direct = from_csv(csv_path, image_dir, "imageName", "gender", image_size=8, seed=5)
    source = {"kind": "csv", "csv": str(csv_path), "image_dir": str(image_dir),
              "image_col": "imageName", "label_col": "gender", "image_size": 8}
    cfg = RunConfig.from_dict({"source": source, "seed": 5})
    again = load_data(cfg)
    assert again.info["files"] == direct.info["files"]
    assert torch.equal(again.train_x, direct.train_x)
    with pytest.raises(DataError, match="kind"):
        load_source({"kind": "zip"})


# ----------------------------------------------------------------------------- errors


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    bad = root / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(DataError, match=r"broken.png") as info:
        from_folder(root, image_size=8)
    assert "cannot be read" in str(info.value)


def test_truncated_image_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    full = _png(root / "a" / "cut.png", 7, size=(64, 64))
    data = full.read_bytes()
    full.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.png"):
        from_folder(root, image_size=8, grayscale=True)


def test_unknown_columns_list_the_available_ones(tmp_path: Path) -> None:
    csv_path, image_dir = make_hands(tmp_path)
    with pytest.raises(DataError, match="sex") as info:
        from_csv(csv_path, image_dir, "imageName", "sex")
    assert "gender" in str(info.value) and "imageName" in str(info.value)
    with pytest.raises(DataError, match="file_name") as info:
        from_csv(csv_path, image_dir, "file_name", "gender")
    assert "aspectOfHand" in str(info.value)


def test_single_class(tmp_path: Path) -> None:
    csv_path, image_dir = make_hands(tmp_path)
    with pytest.raises(DataError, match="at least 2 classes"):
        from_csv(csv_path, image_dir, "imageName", "skinColor")
    root = make_folder(tmp_path / "one", {"only": 5})
    with pytest.raises(DataError, match="at least 2 classes"):
        from_folder(root)


@pytest.mark.parametrize("name", ["../outside.png", "sub/../../outside.png", "ABSOLUTE"])
def test_paths_escaping_the_image_folder(tmp_path: Path, name: str) -> None:
    image_dir = tmp_path / "images"
    _png(image_dir / "a.png", 10)
    _png(image_dir / "b.png", 200)
    outside = _png(tmp_path / "outside.png", 10)
    if name == "ABSOLUTE":
        name = str(outside)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(f"file,label\na.png,x\nb.png,y\n{name},x\n")
    with pytest.raises(DataError, match="outside the image folder") as info:
        from_csv(csv_path, image_dir, "file", "label")
    assert "row 4" in str(info.value)


def test_absolute_path_inside_the_image_folder_is_fine(tmp_path: Path) -> None:
    image_dir = tmp_path / "images"
    files = [_png(image_dir / f"{i}.png", 20 * i) for i in range(8)]
    lines = ["file,label"] + [f"{f},{'ab'[i % 2]}" for i, f in enumerate(files)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    data = from_csv(tmp_path / "labels.csv", image_dir, "file", "label", image_size=8,
                    val_fraction=0.3, test_fraction=0.3)
    assert data.class_names == ["a", "b"]


def test_missing_things(tmp_path: Path) -> None:
    image_dir = tmp_path / "images"
    _png(image_dir / "a.png", 10)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,label\na.png,x\nmissing.png,y\n")
    with pytest.raises(DataError, match=r"missing.png"):
        from_csv(csv_path, image_dir, "file", "label")
    csv_path.write_text("file,label\na.png,x\na.png,\n")
    with pytest.raises(DataError, match=r"row 3.*no label"):
        from_csv(csv_path, image_dir, "file", "label")
    with pytest.raises(DataError, match="CSV file not found"):
        from_csv(tmp_path / "nope.csv", image_dir, "file", "label")
    with pytest.raises(DataError, match="folder not found"):
        from_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no subfolders"):
        from_folder(image_dir)
    root = make_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "c").mkdir()
    with pytest.raises(DataError, match="no image files"):
        from_folder(root)


def test_bad_fractions(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"a": 6, "b": 6})
    with pytest.raises(DataError, match="test_fraction"):
        from_folder(root, image_size=8, test_fraction=0.0)
    with pytest.raises(DataError, match="leave images for training"):
        from_folder(root, image_size=8, val_fraction=0.5, test_fraction=0.5)
