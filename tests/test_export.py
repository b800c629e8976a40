"""Export: the wrapper's preprocessing, TorchScript and ONNX against PyTorch, and the
`autonas export` / `autonas predict` commands on a tiny finished `autonas run --folder`."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from autonas.cli import app
from autonas.config import RunConfig
from autonas.data import Normalizer
from autonas.errors import ConfigError
from autonas.export import export_run, load_state_export, load_wrapped
from autonas.export.torchscript import load_torchscript, to_torchscript
from autonas.export.wrap import ImageModel
from autonas.pipeline import load_data
from autonas.spaces import BuildSpec, make_space

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}
TINY = [
    "--strategy", "darts",
    "--set", "search.channels=4", "--set", "search.layers=2", "--set", "space_options.nodes=2",
    "--set", "search.batch_size=16", "--set", "network.channels=4",
    "--set", "network.layers=2", "--set", "train.batch_size=16",
]
ONNX_TOLERANCE = 1e-4  # float32 kernels of onnxruntime and PyTorch differ in the last bits


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def ok(*args: object):
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails_cleanly(*args: object):
    result = invoke(*args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result


def tiny_model(channels: int = 1, classes: int = 3, size: int = 16) -> ImageModel:
    torch.manual_seed(0)
    space = make_space("darts", nodes=2)
    arch = space.sample(random.Random(1))
    network = space.build(arch, BuildSpec(channels, classes, size, channels=4, layers=2))
    network.eval()
    stats = Normalizer(torch.full((channels,), 0.4), torch.full((channels,), 0.2))
    return ImageModel(network, stats, channels)


# ----------------------------------------------------------------------------- wrapper


def test_wrapper_accepts_every_layout_and_dtype() -> None:
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    nhw = torch.randint(0, 256, (5, 16, 16), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        ref = model(nhw)
        assert ref.shape == (5, 3)
        assert torch.allclose(ref.sum(1), torch.ones(5))
        same = [model(nhw[:, None]), model(nhw[..., None]), model(nhw.float() / 255),
                model(nhw[:, None].float() / 255)]
        for out in same:
            assert torch.allclose(out, ref, atol=1e-6)
        # normalisation is inside: a manual pass gives the same logits
        model.probabilities = False
        manual = model.network((nhw[:, None].float() / 255 - 0.4) / 0.2)
        assert torch.allclose(model(nhw), manual, atol=1e-5)


def test_wrapper_channel_conversion() -> None:
    gray = tiny_model(channels=1)
    rgb = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    luma = (rgb.float() * torch.tensor([0.299, 0.587, 0.114])).sum(-1) / 255
    with torch.no_grad():
        assert torch.allclose(gray(rgb), gray(luma), atol=1e-5)
        rgba = torch.cat([rgb, torch.full((4, 16, 16, 1), 7, dtype=torch.uint8)], dim=-1)
        assert torch.allclose(gray(rgba), gray(rgb), atol=1e-6)
        colour = tiny_model(channels=3)
        one = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
        assert torch.allclose(colour(one), colour(one.expand(-1, 3, -1, -1)), atol=1e-6)


def test_torchscript_matches_pytorch(tmp_path: Path) -> None:
    model = tiny_model()
    example = torch.randint(0, 256, (4, 16, 16), dtype=torch.uint8)
    scripted = to_torchscript(model, example)
    scripted.save(str(tmp_path / "m.pt"))
    loaded = load_torchscript(tmp_path / "m.pt")
    with torch.no_grad():
        for x in (torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8),
                  torch.randint(0, 256, (7, 16, 16, 1), dtype=torch.uint8),
                  torch.rand(3, 1, 16, 16)):
            assert torch.allclose(loaded(x), model(x), atol=1e-6), x.shape


def test_onnx_missing_packages_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from autonas.export import onnx as onnx_export

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ConfigError, match=r"onnxruntime.*autonas\[export\]"):
        onnx_export.require_onnx()


# ----------------------------------------------------------------------------- CLI


def write_folder(root: Path) -> Path:
    """24x20 PNGs, two classes: 'malignant' has a bright block."""
    rng = np.random.default_rng(0)
    for c in ("benign", "malignant"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(20):
            a = rng.integers(0, 90, size=(20, 24), dtype=np.uint8)
            if c == "malignant":
                a[5:15, 6:18] = 230
            Image.fromarray(a).save(root / c / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("export")
    images = write_folder(base / "images")
    out = base / "run"
    ok("run", "--folder", images, "--image-size", 16, *TINY, "--epochs", 1,
       "--retrain-epochs", 2, "--out", out, "--device", "cpu")
    return out, images


def test_run_records_the_folder_source(folder_run: tuple[Path, Path]) -> None:
    run, images = folder_run
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["source"]["kind"] == "folder"
    assert cfg["source"]["path"] == str(images.resolve())
    assert cfg["source"]["image_size"] == 16
    data = json.loads((run / "data.json").read_text())
    assert data["class_names"] == ["benign", "malignant"] and data["image_size"] == [16, 16]
    assert (run / "metrics.json").is_file()
    # --retrain-epochs leaves time over: the default ensemble fills it, so every export
    # test below exports an ensemble
    assert len(json.loads((run / "model.json").read_text())["ensemble"]) == 5


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_export_command(folder_run: tuple[Path, Path], tmp_path: Path, fmt: str) -> None:
    run, _ = folder_run
    target = tmp_path / f"model.{fmt}"
    result = ok("export", run, "--format", fmt, "--out", target)
    assert target.is_file()
    assert "max abs difference" in result.output
    model, _, spec = load_wrapped(run)
    x = torch.randint(0, 256, (6, spec["channels"], 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        expected = model(x).numpy()
        if fmt == "state_dict":
            got = load_state_export(target)(x).numpy()
            tolerance = 0.0
        else:
            got = load_torchscript(target)(x).numpy()
            tolerance = 1e-6
    assert np.abs(got - expected).max() <= tolerance


@pytest.fixture(scope="module")
def onnx_file(folder_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, str]:
    pytest.importorskip("onnxruntime")
    run, _ = folder_run
    target = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = ok("export", run, "--format", "onnx", "--out", target)
    return target, result.output


def test_onnx_export_command(folder_run: tuple[Path, Path], onnx_file: tuple[Path, str]) -> None:
    """The command checks the file in onnxruntime; the test checks again, on other inputs
    and batch sizes (the batch axis is dynamic)."""
    from autonas.export.onnx import onnx_outputs

    run, _ = folder_run
    path, output = onnx_file
    assert "max abs difference" in output
    reported = float(output.rsplit("sample inputs:", 1)[1].split()[0])
    assert 0.0 <= reported <= ONNX_TOLERANCE
    model, _, spec = load_wrapped(run)
    for n in (1, 5, 17):
        x = torch.randint(0, 256, (n, spec["channels"], 16, 16), dtype=torch.uint8)
        with torch.no_grad():
            expected = model(x).numpy()
        got = onnx_outputs(path, x.numpy())
        assert got.shape == (n, 2) and np.allclose(got.sum(1), 1.0, atol=1e-5)
        assert np.abs(got - expected).max() <= ONNX_TOLERANCE


def test_onnx_check_detects_a_different_model(folder_run: tuple[Path, Path],
                                              onnx_file: tuple[Path, str]) -> None:
    from autonas.export.onnx import ExportCheckError, check_onnx

    run, _ = folder_run
    path, _ = onnx_file
    model, _, spec = load_wrapped(run)
    x = [torch.randint(0, 256, (4, spec["channels"], 16, 16), dtype=torch.uint8)]
    assert check_onnx(path, model, x) <= ONNX_TOLERANCE
    with torch.no_grad():  # the last member's output bias (the run's model is an ensemble)
        list(model.network.parameters())[-1][0] += 1.0
    with pytest.raises(ExportCheckError, match="differ"):
        check_onnx(path, model, x)


def test_export_default_location_and_errors(folder_run: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    run, _ = folder_run
    result = export_run(run, "torchscript")
    assert Path(result["path"]) == run / "export" / "model.torchscript.pt"
    assert result["max_abs_diff"] <= 1e-6
    assert "unknown export format" in fails_cleanly("export", run, "--format", "tflite").output
    assert "model.pt" in fails_cleanly("export", tmp_path).output


def test_predict_command(folder_run: tuple[Path, Path]) -> None:
    run, images = folder_run
    files = sorted((images / "malignant").glob("*.png"))[:3]
    result = ok("predict", run, *files, images / "benign")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["path", "label", "p_benign", "p_malignant"]
    body = rows[1:]
    assert len(body) == 3 + 20
    assert [r[0] for r in body[:3]] == [str(f) for f in files]
    for _, label, *probs in body:
        p = np.array(probs, dtype=float)
        assert abs(p.sum() - 1.0) < 1e-5
        assert label == ["benign", "malignant"][int(p.argmax())]


def test_predict_preprocesses_like_training(folder_run: tuple[Path, Path]) -> None:
    """Probabilities of the test images equal the model's on the run's own test tensors."""
    run, images = folder_run
    cfg = RunConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    data = load_data(cfg)
    files = [images / f for f in data.info["files"]["test"]]
    result = ok("predict", run, *files)
    got = np.array([r[2:] for r in list(csv.reader(io.StringIO(result.stdout)))[1:]],
                   dtype=float)
    model, _, _ = load_wrapped(run)
    with torch.no_grad():
        expected = model(data.test_x).numpy()
    assert np.abs(got - expected).max() < 1e-5


def test_predict_errors(folder_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = folder_run
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = fails_cleanly("predict", run, bad)
    assert "bad.png" in result.output
    assert "not found" in fails_cleanly("predict", run, tmp_path / "nope.png").output
    assert "model.pt" in fails_cleanly("predict", tmp_path, bad).output


def test_run_option_errors(tmp_path: Path) -> None:
    images = write_folder(tmp_path / "images")
    assert "not both" in fails_cleanly("run", "--folder", images, "--csv", images / "x.csv",
                                       "--out", tmp_path / "r").output
    (tmp_path / "l.csv").write_text("file,label\n")
    assert "--label-col" in fails_cleanly("run", "--csv", tmp_path / "l.csv",
                                          "--out", tmp_path / "r").output
    assert "--csv" in fails_cleanly("run", "--label-col", "gender",
                                    "--out", tmp_path / "r").output
    assert not (tmp_path / "r").exists()


def test_csv_run_and_resume_config(tmp_path: Path) -> None:
    """`autonas run --csv` on an 11K Hands-shaped CSV: the config records every CSV
    option with absolute paths, so evaluation reloads the same data."""
    image_dir = tmp_path / "Hands"
    rng = np.random.default_rng(1)
    lines = ["id,age,gender,imageName"]
    for i in range(36):
        gender = "male" if i % 2 else "female"
        a = rng.integers(0, 90, size=(16, 16, 3), dtype=np.uint8)
        if gender == "female":
            a[4:12, 4:12] = 220
        image_dir.mkdir(exist_ok=True)
        Image.fromarray(a).save(image_dir / f"Hand_{i:04d}.jpg")
        lines.append(f"{i},{20 + i},{gender},Hand_{i:04d}.jpg")
    (tmp_path / "HandInfo.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    ok("run", "--csv", tmp_path / "HandInfo.csv", "--image-dir", image_dir,
       "--label-col", "gender", "--image-size", 16, *TINY, "--epochs", 1,
       "--retrain-epochs", 1, "--out", out, "--device", "cpu")
    source = yaml.safe_load((out / "config.yaml").read_text())["source"]
    assert source["kind"] == "csv" and source["label_col"] == "gender"
    assert Path(source["csv"]).is_absolute() and Path(source["image_dir"]).is_absolute()
    assert json.loads((out / "data.json").read_text())["channels"] == 3
    (out / "metrics.json").unlink()
    status = json.loads((out / "status.json").read_text())
    del status["evaluate"]
    (out / "status.json").write_text(json.dumps(status))
    ok("evaluate", out)  # reloads the images through the recorded source
    metrics = json.loads((out / "metrics.json").read_text())
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == json.loads(
        (out / "data.json").read_text())["sizes"]["test"]
