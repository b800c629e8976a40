"""BatchLoader epochs and ordering, split_indices stratification."""

from __future__ import annotations

import pytest
import torch

from autonas.data import Augment, BatchLoader, Normalizer, split_indices, subset


def coded(n=50):
    """Images whose pixels encode their index, so batches can be checked against labels."""
    y = torch.arange(n)
    x = (y % 256).to(torch.uint8)[:, None, None, None].expand(n, 1, 8, 8).contiguous()
    return x, y


def test_shuffled_epoch_covers_every_sample_once():
    x, y = coded(50)
    loader = BatchLoader(x, y, 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 7 and loader.num_samples == 50
    for _ in range(2):
        seen = []
        for xb, yb in loader:
            assert xb.dtype == torch.float32 and yb.dtype == torch.int64
            assert torch.equal((xb[:, 0, 0, 0] * 255).round().long(), yb % 256)
            seen.append(yb)
        seen = torch.cat(seen)
        assert sorted(seen.tolist()) == list(range(50))
        assert seen.tolist() != list(range(50))


def test_epochs_differ_and_same_seed_repeats():
    x, y = coded(40)

    def orders(seed):
        loader = BatchLoader(x, y, 10, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [torch.cat([yb for _, yb in loader]).tolist() for _ in range(2)]

    a, b, c = orders(1), orders(1), orders(2)
    assert a == b
    assert a[0] != a[1]
    assert a != c


def test_unshuffled_order_and_last_partial_batch():
    x, y = coded(10)
    batches = [yb.tolist() for _, yb in BatchLoader(x, y, 4)]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_drop_last():
    x, y = coded(10)
    loader = BatchLoader(x, y, 4, shuffle=True, drop_last=True,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    sizes = [len(yb) for _, yb in loader]
    assert len(loader) == 2 and sizes == [4, 4]
    assert len(BatchLoader(x, y, 4, drop_last=False)) == 3


def test_normalizer_augment_and_channels_last_are_applied():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (12, 3, 10, 10), dtype=torch.uint8, generator=g)
    y = torch.arange(12) % 2
    norm = Normalizer.fit(x)
    plain = torch.cat([xb for xb, _ in BatchLoader(x, y, 5, normalizer=norm)])
    assert torch.allclose(plain.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    aug = Augment(pad=2, hflip=True)
    loader = BatchLoader(x, y, 5, augment=aug, normalizer=norm, channels_last=True,
                         generator=torch.Generator().manual_seed(1))  # fmt: skip
    xb, _ = next(iter(loader))
    assert xb.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(xb, plain[:5])
    again = BatchLoader(x, y, 5, augment=aug, normalizer=norm,
                        generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert torch.equal(next(iter(again))[0], xb)


def test_loader_rejects_mismatched_inputs():
    x, y = coded(5)
    with pytest.raises(ValueError, match="samples"):
        BatchLoader(x, y[:4], 2)


def test_split_indices_stratified_disjoint_covering():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 8 + [3] * 2 + [4])
    a, b = split_indices(y, 0.2, seed=0)
    assert set(a.tolist()).isdisjoint(b.tolist())
    assert sorted(a.tolist() + b.tolist()) == list(range(len(y)))
    counts_b = torch.bincount(y[b], minlength=5).tolist()
    assert counts_b[:3] == [12, 6, 2]
    assert counts_b[3] == 1 and counts_b[4] == 0  # tiny classes: one each side, singleton stays
    assert (torch.bincount(y[a], minlength=5) >= 1).all()
    a2, b2 = split_indices(y, 0.2, seed=0)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(b, split_indices(y, 0.2, seed=1)[1])


def test_split_indices_unstratified():
    y = torch.zeros(100, dtype=torch.int64)
    a, b = split_indices(y, 0.25, seed=0, stratified=False)
    assert len(b) == 25 and len(a) == 75
    with pytest.raises(ValueError, match="fraction"):
        split_indices(y, 1.0, seed=0)


def test_subset():
    x, y = coded(10)
    xs, ys = subset(x, y, torch.tensor([7, 2]))
    assert ys.tolist() == [7, 2] and xs[0, 0, 0, 0] == 7
