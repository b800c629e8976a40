"""MedMNIST+ sizes (64, 128, 224 px): stems that bring every size to ~28-32 px at the
cells, 28 px networks unchanged, the lower-resolution search proxy, and a 64 px run end
to end (search, retrain, evaluate, ONNX, report)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from autonas.config import RunConfig
from autonas.data import from_arrays
from autonas.errors import ConfigError
from autonas.export import export_run
from autonas.pipeline import execute, search_side
from autonas.run import RunDir
from autonas.spaces import BuildSpec, make_space
from autonas.spaces.darts import Stem, stem_downsamples
from autonas.spaces.genotype import Genotype

CELL_SIDES = {28: 28, 64: 32, 128: 32, 224: 28}


def _cell_input_side(model: torch.nn.Module, side: int) -> int:
    seen = []
    handle = model.cells[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, side, side))
    handle.remove()
    return int(seen[0].shape[-1])


@pytest.mark.parametrize("side", sorted(CELL_SIDES))
def test_darts_and_resblock_stems_bring_cells_to_about_32_px(side: int) -> None:
    for name in ("darts", "resblock"):
        space = make_space(name, nodes=2)
        arch = space.sample(random.Random(0))
        model = space.build(arch, BuildSpec(1, 2, side, channels=4, layers=2))
        assert _cell_input_side(model, side) == CELL_SIDES[side], (name, side)


def test_28_px_networks_are_unchanged() -> None:
    stem = Stem(1, 12, 28)
    assert stem_downsamples(28) == 0
    assert [type(m).__name__ for m in stem] == ["Conv2d", "BatchNorm2d"]
    assert stem[0].stride == (1, 1)
    cnn = make_space("medmnist-cnn")
    arch = {"convolution_block": 0, "feature": 64}
    small = cnn.build(arch, BuildSpec(1, 2, 28))
    large = cnn.build(arch, BuildSpec(1, 2, 128))
    assert small.shrink == 1 and [n for n, _ in small.named_children()] == [
        "convolution_block", "fc1", "fc2"]  # the seed's layers, nothing added
    assert large.shrink == 4  # 128 px pooled to 32 px before the blocks
    assert small.state_dict().keys() == large.state_dict().keys()
    assert large(torch.zeros(2, 1, 128, 128)).shape == (2, 2)


def _bright_square(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, (n, side, side), dtype=np.uint8)
    y = np.arange(n) % 2
    q = side // 4
    x[y == 1, q:3 * q, q:3 * q] = 230
    return x, y


def test_search_proxy_resolution() -> None:
    data = from_arrays(_bright_square(8, 128, 0), _bright_square(4, 128, 1),
                       _bright_square(4, 128, 2))
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert search_side(RunConfig(), data, cpu) == 64
    assert search_side(RunConfig(), data, gpu) == 128
    assert search_side(RunConfig(search_size=None), data, cpu) == 128
    assert search_side(RunConfig(search_size=32), data, cpu) == 32
    small = data.resized(64)
    assert small.train_x.shape == (8, 1, 64, 64) and small.train_x.dtype == torch.uint8
    assert torch.equal(small.train_y, data.train_y)
    # area averaging: a uniform 2x2 block keeps its value
    assert int(small.train_x[1, 0, 24, 24]) == 230
    with pytest.raises(ConfigError, match="search_size"):
        RunConfig(search_size=4)


def test_64_px_run_end_to_end(tmp_path: Path) -> None:
    data = from_arrays(_bright_square(48, 64, 0), _bright_square(24, 64, 1),
                       _bright_square(24, 64, 2), name="squares64")
    cfg = RunConfig.from_dict({
        "dataset": "squares64", "strategy": "darts", "space_options": {"nodes": 2},
        "search": {"epochs": 1, "channels": 4, "layers": 2, "batch_size": 16},
        "network": {"channels": 4, "layers": 2}, "train": {"epochs": 2, "batch_size": 16},
        "budget": None, "device": "cpu", "search_size": 32})
    run = RunDir.create(tmp_path / "run", name="s64")
    summary = execute(cfg, run, data=data)
    assert run.read_json("search/result.json")["image_size"] == 32
    Genotype.from_dict(run.read_json("genotype.json")["genotype"])
    model = run.read_json("model.json")
    assert model["build"]["image_size"] == 64  # retrained at the full size
    assert summary["metrics"]["test"]["n"] == 24
    assert run.file("report.html").is_file()
    pytest.importorskip("onnxruntime")
    from autonas.export.onnx import onnx_outputs

    result = export_run(run.path, "onnx", tmp_path / "m.onnx")
    assert result["input"]["height"] == 64 and result["max_abs_diff"] <= 1e-4
    out = onnx_outputs(tmp_path / "m.onnx", data.test_x[:3].numpy())
    probs = np.load(run.file("predictions.npz"))["test_probs"][:3]
    assert np.allclose(out, probs, atol=1e-4)
