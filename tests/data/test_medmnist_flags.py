"""Every 2D MedMNIST flag at every size loads offline from a file in its official layout.

The files are synthetic but shaped as the official ones are (grey (N,H,W) or RGB (N,H,W,3)
images, (N,1) labels over the flag's classes, named ``flag[_size].npz``), placed in
``$AUTONAS_DATA`` and read with the MD5 check off through ``AUTONAS_VERIFY_MD5=0``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medmnist import INFO

import autonas.data.medmnist as mm
from autonas.config import RunConfig
from autonas.data import SIZES, load_dataset, load_medmnist, medmnist_flags
from autonas.errors import DataError
from autonas.pipeline import load_data

FLAGS_2D = [
    "pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
    "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist",
]
SPLIT_SIZES = {"train": 11, "val": 3, "test": 4}  # train holds every class


def write_official_layout(folder: Path, flag: str, size: int, side: int | None = None) -> Path:
    """A small npz with the keys, dtypes and shapes of the official ``flag`` file at ``size``."""
    meta = INFO[flag]
    n_classes = len(meta["label"])
    side = side or size
    multi_label = "multi-label" in meta["task"]
    rng = np.random.default_rng(size)
    arrays = {}
    for split, n in SPLIT_SIZES.items():
        shape = (n, side, side) if meta["n_channels"] == 1 else (n, side, side, 3)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        if multi_label:
            arrays[f"{split}_labels"] = rng.integers(0, 2, (n, n_classes), dtype=np.uint8)
        else:
            arrays[f"{split}_labels"] = (np.arange(n) % n_classes).astype(np.uint8)[:, None]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    np.savez(path, **arrays)
    return path


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mm.VERIFY_ENV, "0")


def test_every_2d_flag_is_known():
    assert sorted(medmnist_flags()) == sorted(FLAGS_2D)
    assert SIZES == (28, 64, 128, 224)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("flag", [f for f in FLAGS_2D if f != "chestmnist"])
def test_flag_loads_offline_at_size(flag, size, no_md5, _isolated_cache):
    meta = INFO[flag]
    path = write_official_layout(_isolated_cache, flag, size)
    data = load_dataset(flag.upper() if size == 64 else flag, size=size, download=False)
    n_classes = len(meta["label"])
    assert data.n_classes == n_classes
    assert data.class_names == [meta["label"][str(i)] for i in range(n_classes)]
    assert data.task == ("binary-class" if n_classes == 2 else "multi-class")
    assert data.info["medmnist_task"] == meta["task"]
    assert data.channels == meta["n_channels"]
    if (flag, size) == ("breastmnist", 28):  # the bundled official file wins
        assert data.info["path"] == "bundled:breastmnist.npz"
        assert data.image_size == (28, 28)
        return
    assert data.info["path"] == str(path) and data.info["md5_verified"] is False
    assert data.info["md5"] == mm.md5sum(path)
    assert data.image_size == (size, size)
    assert [len(data.train_y), len(data.val_y), len(data.test_y)] == list(SPLIT_SIZES.values())
    assert data.train_x.shape == (11, meta["n_channels"], size, size)
    assert data.name == (flag if size == 28 else f"{flag}_{size}")


def test_retinamnist_ordinal_regression_loads_as_multi_class(no_md5, _isolated_cache):
    write_official_layout(_isolated_cache, "retinamnist", 28)
    data = load_medmnist("retinamnist", download=False)
    assert INFO["retinamnist"]["task"] == "ordinal-regression"
    assert data.task == "multi-class" and data.n_classes == 5
    assert "ordinal" in data.info["note"]


@pytest.mark.parametrize("size", SIZES)
def test_chestmnist_multi_label_is_refused_clearly(size, no_md5, _isolated_cache):
    write_official_layout(_isolated_cache, "chestmnist", size)
    with pytest.raises(DataError) as e:
        load_dataset("chestmnist", size=size, download=False)
    msg = str(e.value)
    assert "multi-label tasks are not supported" in msg and "chestmnist" in msg
    assert "pneumoniamnist" in msg  # names a set that works


def test_run_config_loads_the_flag_and_size(no_md5, _isolated_cache):
    write_official_layout(_isolated_cache, "organcmnist", 64)
    data = load_data(RunConfig(dataset="OrganCMNIST", size=64))
    assert data.name == "organcmnist_64" and data.n_classes == 11


def test_md5_is_checked_unless_turned_off(_isolated_cache, monkeypatch):
    write_official_layout(_isolated_cache, "dermamnist", 28)
    with pytest.raises(DataError, match=r"MD5 mismatch for dermamnist\.npz"):
        load_medmnist("dermamnist", download=False)
    assert load_medmnist("dermamnist", download=False, verify=False).n_classes == 7
    monkeypatch.setenv(mm.VERIFY_ENV, "off")
    assert load_medmnist("dermamnist", download=False).n_classes == 7
    with pytest.raises(DataError, match="MD5 mismatch"):  # the argument wins over the variable
        load_medmnist("dermamnist", download=False, verify=True)


def test_unverified_file_of_the_wrong_size_is_refused(no_md5, _isolated_cache):
    write_official_layout(_isolated_cache, "octmnist", 128, side=64)
    with pytest.raises(DataError, match=r"images are 64x64 px but the file name is for 128 px"):
        load_medmnist("octmnist", size=128, download=False)


@pytest.mark.parametrize("size", [32, 0])
def test_unknown_size_is_refused(size):
    with pytest.raises(DataError, match="28, 64, 128, 224"):
        load_medmnist("pathmnist", size=size, download=False)
