"""ImageData, the array/npz constructors, the bundled BreastMNIST and load_dataset dispatch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from medmnist import INFO

from autonas.data import ImageData, from_arrays, from_npz, load_dataset, load_medmnist
from autonas.data.download import md5sum
from autonas.errors import DataError


def test_from_arrays_basics(make_split):
    tr, va, te = make_split(30, 3), make_split(9, 3, seed=1), make_split(6, 3, seed=2)
    d = from_arrays(tr, va, te, name="toy")
    assert d.n_classes == 3 and d.task == "multi-class"
    assert d.class_names == ["0", "1", "2"]
    assert d.channels == 1 and d.image_size == (12, 12)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert d.class_counts("train") == [10, 10, 10]
    x, y = d.split("val")
    assert x is d.val_x and y is d.val_y
    with pytest.raises(DataError, match="unknown split"):
        d.split("holdout")


def test_binary_task_is_inferred_and_class_names_used(make_split):
    d = from_arrays(make_split(10), make_split(4), make_split(4), class_names=["neg", "pos"])
    assert d.task == "binary-class" and d.class_names == ["neg", "pos"]


def test_val_none_holds_out_stratified_seeded_tenth(make_split):
    x, y = make_split(200, 4, channels=3)
    d = from_arrays((x, y), None, make_split(8, 4, channels=3), seed=3)
    assert len(d.train_y) + len(d.val_y) == 200
    assert d.class_counts("val") == [5, 5, 5, 5]
    assert d.class_counts("train") == [45, 45, 45, 45]
    # The held-out images are real train images, not duplicated in the new train split.
    all_x = torch.cat([d.train_x, d.val_x]).flatten(1)
    assert torch.unique(all_x, dim=0).shape[0] == 200
    again = from_arrays((x, y), None, make_split(8, 4, channels=3), seed=3)
    assert torch.equal(again.val_x, d.val_x)
    other = from_arrays((x, y), None, make_split(8, 4, channels=3), seed=4)
    assert not torch.equal(other.val_x, d.val_x)
    assert d.info["val_from_train"]["seed"] == 3


def test_test_split_is_required(make_split):
    with pytest.raises(DataError, match="test split is required"):
        from_arrays(make_split(10), make_split(4), None)


def test_summary_is_json_able(make_split):
    d = from_arrays(make_split(10), make_split(4), make_split(6), info={"license": "MIT"})
    s = json.loads(json.dumps(d.summary()))
    assert s["sizes"] == {"train": 10, "val": 4, "test": 6}
    assert s["class_counts"]["test"] == [3, 3]
    assert s["image_size"] == [12, 12] and s["channels"] == 1
    assert s["license"] == "MIT" and s["n_classes"] == 2 and s["task"] == "binary-class"


def test_imagedata_rejects_bad_structure():
    x = torch.zeros(4, 1, 10, 10, dtype=torch.uint8)
    y = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(DataError, match="expected"):
        ImageData("bad", x, y[:3], x, y, x, y, class_names=["a", "b"])


def test_from_npz_round_trip(tiny_npz):
    d = from_npz(tiny_npz)
    assert d.name == "tiny"
    assert [len(d.train_y), len(d.val_y), len(d.test_y)] == [20, 6, 8]
    assert d.info["md5"] == md5sum(tiny_npz)
    assert d.info["path"] == str(tiny_npz.resolve())
    with np.load(tiny_npz) as f:
        assert torch.equal(d.train_x[:, 0], torch.from_numpy(f["train_images"]))


def test_from_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        from_npz(tmp_path / "nope.npz")


def test_from_npz_not_an_npz(tmp_path):
    p = tmp_path / "fake.npz"
    p.write_text("hello, not a zip")
    with pytest.raises(DataError, match=r"is not an \.npz archive") as e:
        from_npz(p)
    assert "pickle" not in str(e.value)


def test_from_npz_single_npy(tmp_path):
    p = tmp_path / "arr.npy"
    np.save(p, np.zeros((2, 10, 10), np.uint8))
    with pytest.raises(DataError, match=r"single \.npy array"):
        from_npz(p)


def test_from_npz_refuses_pickled_arrays(tmp_path, make_split):
    x, y = make_split(4)
    p = tmp_path / "pickled.npz"
    ragged = np.array([np.zeros(3), np.zeros(4)], dtype=object)
    np.savez(p, train_images=ragged, train_labels=y, val_images=x, val_labels=y,
             test_images=x, test_labels=y)  # fmt: skip
    with pytest.raises(DataError, match="pickled"):
        from_npz(p)


def test_bundled_breastmnist_loads_offline(tmp_path):
    d = load_medmnist("breastmnist", root=tmp_path / "empty", download=False)
    assert [len(d.train_y), len(d.val_y), len(d.test_y)] == [546, 78, 156]
    assert d.n_classes == 2 and d.task == "binary-class"
    labels = INFO["breastmnist"]["label"]
    assert d.class_names == [labels["0"], labels["1"]]
    assert d.train_x.shape[1:] == (1, 28, 28) and d.train_x.dtype == torch.uint8
    assert d.hflip is True and d.vflip is False
    assert d.info["license"] == "CC BY 4.0"
    assert d.info["md5"] == "750601b1f35ba3300ea97c75c52ff8f6"
    assert "10.1038/s41597-022-01721-8" in d.info["citation"]
    assert d.info["path"].startswith("bundled:")
    assert not (tmp_path / "empty").exists()  # nothing downloaded or cached


def test_bundled_file_is_the_official_one():
    from importlib.resources import as_file, files

    with as_file(files("autonas.data") / "bundled" / "breastmnist.npz") as p:
        assert md5sum(p) == INFO["breastmnist"]["MD5"]


def test_load_dataset_dispatch(tiny_npz):
    assert load_dataset("BreastMNIST").name == "breastmnist"
    assert load_dataset(str(tiny_npz)).name == "tiny"
    assert load_dataset(tiny_npz).name == "tiny"
    with pytest.raises(DataError, match="file not found"):
        load_dataset("missing/data.npz")


def test_unknown_flag_lists_valid_flags():
    with pytest.raises(DataError, match="unknown MedMNIST flag") as e:
        load_dataset("cifarmnist")
    assert "pathmnist" in str(e.value) and "breastmnist" in str(e.value)
    assert "organmnist3d" not in str(e.value).split("Valid flags:")[1]


def test_3d_flag_is_rejected():
    with pytest.raises(DataError, match="3D"):
        load_medmnist("organmnist3d")


def test_bad_size():
    with pytest.raises(DataError, match="size 32"):
        load_medmnist("breastmnist", size=32)


def test_multi_label_is_rejected():
    with pytest.raises(DataError, match="multi-label tasks are not supported yet"):
        load_medmnist("chestmnist", download=False)
