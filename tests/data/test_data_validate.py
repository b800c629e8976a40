"""Layout conversion and one test per kind of bad input, each checking the message is useful."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import autonas.data.validate as validate_mod
from autonas.data import from_arrays, from_npz, validate_arrays
from autonas.data.validate import to_images, to_labels
from autonas.errors import DataError

RNG = np.random.default_rng(0)


def imgs(*shape, dtype=np.uint8):
    if np.dtype(dtype).kind == "f":
        return RNG.random(shape).astype(dtype)
    return RNG.integers(0, 256, size=shape).astype(dtype)


def labels(n, k=2):
    return np.arange(n) % k


def ok_splits(n=10, size=10):
    return {
        "train": (imgs(n, size, size), labels(n)),
        "val": (imgs(4, size, size), labels(4)),
        "test": (imgs(4, size, size), labels(4)),
    }


# ---------------------------------------------------------------- layouts


def test_nhw_gets_channel_axis_and_stays_uint8():
    x = imgs(5, 9, 11)
    t = to_images(x, "train")
    assert t.shape == (5, 1, 9, 11) and t.dtype == torch.uint8
    assert torch.equal(t[:, 0], torch.from_numpy(x))


@pytest.mark.parametrize("c", [1, 3])
def test_channel_last_is_transposed(c):
    x = imgs(4, 10, 12, c)
    t = to_images(x, "train")
    assert t.shape == (4, c, 10, 12)
    assert torch.equal(t, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert t.is_contiguous()


@pytest.mark.parametrize("c", [1, 3])
def test_channel_first_is_kept(c):
    x = imgs(4, c, 10, 12)
    t = to_images(x, "train")
    assert t.shape == (4, c, 10, 12)
    assert torch.equal(t, torch.from_numpy(x))


def test_tensor_input_is_accepted():
    x = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(to_images(x, "train"), x)


def test_float_images_become_float32_with_values_unchanged():
    x = RNG.normal(50, 30, size=(3, 10, 10, 3))  # float64, arbitrary range
    t = to_images(x, "train")
    assert t.dtype == torch.float32
    np.testing.assert_allclose(t.permute(0, 2, 3, 1).numpy(), x.astype(np.float32))


def test_integer_images_in_byte_range_become_uint8_others_float():
    assert to_images(imgs(2, 10, 10, dtype=np.int64), "train").dtype == torch.uint8
    wide = np.full((2, 10, 10), 1000, dtype=np.uint16)
    t = to_images(wide, "train")
    assert t.dtype == torch.float32 and float(t.max()) == 1000.0


def test_ambiguous_layout_is_channel_last_then_rejected_as_too_small():
    with pytest.raises(DataError, match="smaller than 8") as e:
        to_images(imgs(2, 3, 10, 3), "train")
    assert "(N,H,W,C)" in str(e.value) and "smaller than 8" in str(e.value)


def test_rgba_drops_alpha_with_warning():
    x = imgs(2, 10, 10, 4)
    with pytest.warns(UserWarning, match="alpha"):
        t = to_images(x, "train")
    assert t.shape == (2, 3, 10, 10)
    assert torch.equal(t, torch.from_numpy(x[..., :3]).permute(0, 3, 1, 2))


@pytest.mark.parametrize("shape", [(6,), (6, 1)])
def test_label_shapes_become_int64_vector(shape):
    y = (np.arange(6) % 3).astype(np.uint8).reshape(shape)
    t = to_labels(y, "train", 6)
    assert t.dtype == torch.int64 and t.shape == (6,)
    assert t.tolist() == [0, 1, 2, 0, 1, 2]


def test_integral_float_labels_are_accepted():
    assert to_labels(np.array([0.0, 1.0, 2.0]), "val", 3).tolist() == [0, 1, 2]


def test_validate_arrays_infers_n_classes():
    out, k = validate_arrays(ok_splits())
    assert k == 2 and set(out) == {"train", "val", "test"}


# ---------------------------------------------------------------- bad inputs


def test_missing_npz_keys_are_listed_with_expected_layout(tmp_path):
    p = tmp_path / "partial.npz"
    np.savez(p, train_images=imgs(4, 10, 10), train_labels=labels(4))
    with pytest.raises(DataError, match="missing") as e:
        from_npz(p)
    msg = str(e.value)
    for key in ("val_images", "val_labels", "test_images", "test_labels"):
        assert key in msg
    assert "train_images, train_labels, val_images, val_labels, test_images, test_labels" in msg


def test_mismatched_counts():
    s = ok_splits()
    s["val"] = (imgs(5, 10, 10), labels(4))
    with pytest.raises(DataError, match="4 labels but val_images has 5 images") as e:
        validate_arrays(s)
    assert "'val'" in str(e.value)


def test_labels_out_of_range_for_given_classes():
    s = ok_splits()
    s["test"] = (imgs(4, 10, 10), np.array([0, 1, 2, 1]))
    with pytest.raises(DataError, match=r"label 2 at index 2 .*valid range 0\.\.1") as e:
        validate_arrays(s, n_classes=2)
    assert "test_labels" in str(e.value) and "class_names" in str(e.value)


def test_labels_out_of_range_via_class_names():
    s = ok_splits()
    with pytest.raises(DataError, match="outside"):
        from_arrays(
            s["train"], s["val"], (imgs(2, 10, 10), np.array([0, 5])), class_names=["a", "b"]
        )


def test_negative_labels():
    s = ok_splits()
    s["train"] = (imgs(4, 10, 10), np.array([0, 1, -1, 1]))
    with pytest.raises(DataError, match="negative labels") as e:
        validate_arrays(s)
    assert "train_labels" in str(e.value) and "remap" in str(e.value)


def test_non_integer_labels():
    s = ok_splits()
    s["val"] = (imgs(3, 10, 10), np.array([0.0, 0.5, 1.0]))
    with pytest.raises(DataError, match="non-integer labels") as e:
        validate_arrays(s)
    assert "val_labels" in str(e.value)


def test_nan_labels_are_non_integer():
    with pytest.raises(DataError, match="non-integer"):
        to_labels(np.array([0.0, np.nan]), "train", 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_images(bad, monkeypatch):
    monkeypatch.setattr(validate_mod, "_CHUNK_ELEMS", 200)  # 2 images per chunk: index math counts
    x = imgs(5, 10, 10, dtype=np.float32)
    x[3, 2, 2] = bad
    with pytest.raises(DataError, match="NaN or inf") as e:
        to_images(x, "test")
    assert "image 3" in str(e.value) and "'test'" in str(e.value)


def test_empty_split():
    s = ok_splits()
    s["test"] = (np.zeros((0, 10, 10), np.uint8), np.zeros((0,), np.int64))
    with pytest.raises(DataError, match="empty") as e:
        validate_arrays(s)
    assert "test_images" in str(e.value)


def test_images_smaller_than_8px():
    with pytest.raises(DataError, match="smaller than 8 px") as e:
        to_images(imgs(3, 7, 20), "val")
    assert "val_images" in str(e.value) and "Resize" in str(e.value)


def test_class_in_val_missing_from_train():
    s = ok_splits()
    s["val"] = (imgs(3, 10, 10), np.array([0, 1, 2]))
    with pytest.raises(DataError, match="missing from train_labels") as e:
        validate_arrays(s)
    assert "[2]" in str(e.value) and "val_labels" in str(e.value)


def test_class_index_gap_in_train():
    s = ok_splits()
    s["train"] = (imgs(4, 10, 10), np.array([0, 2, 0, 2]))
    s["val"] = (imgs(2, 10, 10), np.array([0, 2]))
    s["test"] = (imgs(2, 10, 10), np.array([0, 2]))
    with pytest.raises(DataError, match=r"train_labels has label 2 at index 1 .*valid range "
                       r"0\.\.0"):
        validate_arrays(s)


def test_class_names_longer_than_labels_need_train_examples():
    s = ok_splits()
    with pytest.raises(DataError, match="missing from train"):
        from_arrays(s["train"], s["val"], s["test"], class_names=["a", "b", "c"])


@pytest.mark.parametrize("shape", [(10, 10), (2, 3, 1, 10, 10)])
def test_wrong_ndim(shape):
    with pytest.raises(DataError, match="dimensions") as e:
        to_images(np.zeros(shape, np.uint8), "train")
    assert "train_images" in str(e.value)


@pytest.mark.parametrize("shape", [(2, 10, 10, 5), (2, 6, 10, 10)])
def test_more_than_4_channels(shape):
    with pytest.raises(DataError, match="more than 4 channels"):
        to_images(np.zeros(shape, np.uint8), "train")


@pytest.mark.parametrize("shape", [(6, 3), (6, 1, 1), (1, 6)])
def test_label_shape(shape):
    with pytest.raises(DataError, match=r"must have shape \(N,\) or \(N,1\)") as e:
        to_labels(np.zeros(shape, np.int64), "test", 6)
    assert "test_labels" in str(e.value)


def test_multi_label_targets_get_a_hint():
    with pytest.raises(DataError, match="multi-label"):
        to_labels(np.zeros((6, 4), np.int64), "train", 6)


def test_image_size_mismatch_between_splits():
    s = ok_splits()
    s["test"] = (imgs(4, 12, 12), labels(4))
    with pytest.raises(DataError, match="must share channels and image size"):
        validate_arrays(s)


def test_single_class_is_rejected():
    s = {k: (x, np.zeros(len(y), np.int64)) for k, (x, y) in ok_splits().items()}
    with pytest.raises(DataError, match="at least 2 classes"):
        validate_arrays(s)


def test_non_numeric_images():
    with pytest.raises(DataError, match="not numeric"):
        to_images(np.full((2, 10, 10), "a"), "train")
