"""Normalizer statistics and the vectorised crop/flip augmentation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import autonas.data.transforms as tf
from autonas.data import Augment, Normalizer, from_arrays, to_float


def test_to_float():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(to_float(x), torch.tensor([0.0, 0.2, 1.0]))
    f = torch.tensor([3.0, -2.0], dtype=torch.float64)
    assert to_float(f).dtype == torch.float32 and to_float(f).tolist() == [3.0, -2.0]


def test_normalizer_standardises_train_split(monkeypatch):
    monkeypatch.setattr(tf, "_FIT_CHUNK_ELEMS", 7 * 3 * 9 * 9)  # 7-image chunks, last partial
    g = torch.Generator().manual_seed(0)
    x = torch.stack(
        [
            torch.randint(0, 100, (50, 9, 9), generator=g),
            torch.randint(100, 256, (50, 9, 9), generator=g),
            torch.randint(0, 256, (50, 9, 9), generator=g),
        ],
        dim=1,
    ).to(torch.uint8)
    norm = Normalizer.fit(x)
    z = norm(to_float(x))
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    ref = to_float(x).to(torch.float64)
    assert torch.allclose(norm.mean.double(), ref.mean(dim=(0, 2, 3)), atol=1e-6)


def test_normalizer_float_input_uses_values_as_given():
    x = torch.full((4, 1, 8, 8), 100.0)
    x[:2] = 300.0
    n = Normalizer.fit(x)
    assert n.mean.tolist() == [200.0] and n.std.tolist() == [100.0]


def test_constant_images_do_not_divide_by_zero():
    n = Normalizer.fit(torch.full((3, 2, 8, 8), 7, dtype=torch.uint8))
    assert (n.std > 0).all()
    assert torch.isfinite(n(to_float(torch.full((1, 2, 8, 8), 9, dtype=torch.uint8)))).all()


def test_normalizer_dict_round_trip():
    n = Normalizer(torch.tensor([0.1, 0.2]), torch.tensor([0.3, 0.4]))
    d = json.loads(json.dumps(n.to_dict()))
    m = Normalizer.from_dict(d)
    assert torch.equal(m.mean, n.mean) and torch.equal(m.std, n.std)


def batch(b=16, c=3, h=10, w=12, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_augment_keeps_shape_and_is_seeded():
    x = batch()
    aug = Augment(pad=3, hflip=True, vflip=True)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_identity_augment():
    x = batch()
    aug = Augment()
    assert aug.is_identity
    assert torch.equal(aug(x, torch.Generator().manual_seed(0)), x)


@pytest.mark.parametrize(("flag", "dim"), [("hflip", 3), ("vflip", 2)])
def test_flips_are_exact_for_flipped_samples(flag, dim):
    x = batch(b=64)
    out = Augment(**{flag: True})(x, torch.Generator().manual_seed(1))
    flipped = torch.flip(x, dims=[dim])
    is_flipped = [torch.equal(o, f) for o, f in zip(out, flipped, strict=True)]
    is_same = [torch.equal(o, s) for o, s in zip(out, x, strict=True)]
    assert all(f != s for f, s in zip(is_flipped, is_same, strict=True))  # exactly one holds
    assert 10 < sum(is_flipped) < 54  # about half


def _window_offsets(padded: torch.Tensor, out: torch.Tensor) -> list[tuple[int, int]]:
    h, w = out.shape[-2:]
    return [
        (i, j)
        for i in range(padded.shape[-2] - h + 1)
        for j in range(padded.shape[-1] - w + 1)
        if torch.equal(padded[:, i : i + h, j : j + w], out)
    ]


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crops_are_windows_of_the_padded_image(mode):
    x = batch(b=24)
    p = 3
    out = Augment(pad=p, mode=mode)(x, torch.Generator().manual_seed(2))
    padded = F.pad(x, (p, p, p, p), mode="constant" if mode == "zeros" else "reflect")
    offsets = []
    for i in range(len(x)):
        found = _window_offsets(padded[i], out[i])
        assert found, f"sample {i} is not a crop of its padded input"
        offsets.append(found[0])
    assert len(set(offsets)) > 5  # per-sample offsets, not one shared shift
    assert len({i for i, _ in offsets}) > 2 and len({j for _, j in offsets}) > 2
    assert any(i != j for i, j in offsets)  # rows and columns shift independently


def test_augment_on_uint8_scaled_batch_from_data(make_split):
    d = from_arrays(make_split(20), make_split(4), make_split(4))
    aug = Augment.default_for(d)
    assert aug.pad == 2 and aug.hflip and not aug.vflip  # max(2, 12 // 8)
    assert aug(to_float(d.train_x), torch.Generator().manual_seed(0)).shape == (20, 1, 12, 12)


def test_default_pad_scales_with_image_size(make_split):
    d = from_arrays(make_split(8, size=64), make_split(4, size=64), make_split(4, size=64))
    assert Augment.default_for(d).pad == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_cpu():
    x = batch()
    aug = Augment(pad=2, hflip=True, vflip=True)
    cpu = aug(x, torch.Generator().manual_seed(3))
    gpu = aug(x.cuda(), torch.Generator().manual_seed(3))
    assert torch.equal(cpu, gpu.cpu())
