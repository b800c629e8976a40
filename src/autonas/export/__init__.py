"""Export a trained model for use outside autonas: a plain module with its preprocessing
(state dict + JSON, TorchScript, ONNX checked with onnxruntime), and prediction on files.

Everything starts from a folder holding ``model.pt`` and ``model.json`` (a run folder, or
a folder written by ``ImageClassifier.save``), through :func:`autonas.pipeline.load_model`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data import Normalizer
from ..errors import ConfigError
from ..run import RunDir
from .onnx import TOLERANCE, ExportCheckError
from .wrap import ImageModel, unit_scale

FORMATS = {"state_dict": "model_state.pt", "torchscript": "model.torchscript.pt",
           "onnx": "model.onnx"}


def open_model_dir(path: str | Path) -> RunDir:
    run = RunDir(path)
    if not run.path.is_dir():
        raise ConfigError(f"{path}: folder not found; pass a run folder (or a saved "
                          "ImageClassifier folder)")
    missing = [f for f in ("model.pt", "model.json") if not run.exists(f)]
    if missing:
        raise ConfigError(f"{path} has no {' or '.join(missing)}: the model is written when "
                          f"retraining finishes (continue it with autonas run --resume {path})")
    return run


def input_spec(run: RunDir, meta: dict[str, Any]) -> dict[str, Any]:
    """Channels, height, width, dtype and layout of the images the model was trained on."""
    spec = dict(meta.get("input") or {})
    data = run.read_json("data.json") if run.exists("data.json") else {}
    build = meta["build"]
    size = data.get("image_size") or [build["image_size"], build["image_size"]]
    spec.setdefault("channels", build["in_channels"])
    spec.setdefault("height", size[0])
    spec.setdefault("width", size[1])
    spec.setdefault("dtype", data.get("dtype", "uint8"))
    if "pixel_max" in data:
        spec.setdefault("pixel_max", data["pixel_max"])
    spec.setdefault("layout", "NCHW")
    return spec


def sample_input(spec: dict[str, Any], batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Random images of the training data's dtype and layout (export examples and checks)."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = spec["channels"], spec["height"], spec["width"]
    shape = {"NHW": (batch, h, w), "NHWC": (batch, h, w, c)}.get(spec["layout"],
                                                                    (batch, c, h, w))
    if spec["dtype"] == "uint8":
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return torch.rand(shape, generator=g)


def load_wrapped(path: str | Path, *, probabilities: bool = True
                 ) -> tuple[ImageModel, dict[str, Any], dict[str, Any]]:
    """(exported module, model.json, input spec) of a model folder."""
    from ..pipeline import load_model

    run = open_model_dir(path)
    network, normalizer, meta = load_model(run, "cpu")
    network = network.to(memory_format=torch.contiguous_format)
    spec = input_spec(run, meta)
    model = ImageModel(network, normalizer, meta["build"]["in_channels"],
                       probabilities=probabilities, unit_scale_trained=unit_scale(spec),
                       head=meta["build"].get("head", "softmax"))
    return model, meta, spec


def save_state_export(model: ImageModel, meta: dict[str, Any], spec: dict[str, Any],
                      path: str | Path) -> Path:
    """Weights (including normalisation) + a JSON sidecar from which the model is rebuilt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    sidecar = {key: meta[key] for key in ("space", "space_options", "arch", "build",
                                          "class_names") if key in meta}
    if meta.get("ensemble"):
        sidecar["ensemble"] = [{"arch": m["arch"]} for m in meta["ensemble"]]
    if meta.get("tta"):
        sidecar["tta"] = meta["tta"]
    sidecar.update(input=spec, probabilities=model.probabilities,
                   normalizer=meta["normalizer"])
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return path


def load_state_export(path: str | Path) -> ImageModel:
    """Rebuild a module written by :func:`save_state_export` (weights only, no pickle)."""
    from ..spaces import make_space
    from ..spaces.ensemble import build_final

    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    network = build_final(make_space(meta["space"], **meta["space_options"]), meta)
    model = ImageModel(network, Normalizer.from_dict(meta["normalizer"]),
                       meta["build"]["in_channels"], probabilities=meta["probabilities"],
                       unit_scale_trained=unit_scale(meta.get("input") or {}),
                       head=meta["build"].get("head", "softmax"))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def export_run(path: str | Path, fmt: str = "onnx", out: str | Path | None = None,
               *, probabilities: bool = True) -> dict[str, Any]:
    """Export the model of a run folder; returns where it went and, for TorchScript and
    ONNX, the largest difference from the PyTorch model on sample inputs."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    model, meta, spec = load_wrapped(path, probabilities=probabilities)
    target = Path(out) if out is not None else Path(path) / "export" / FORMATS[fmt]
    example = sample_input(spec)
    checks = [sample_input(spec, batch=n, seed=n) for n in (1, 3, 8)]
    result: dict[str, Any] = {"format": fmt, "path": str(target), "input": spec}
    if fmt == "state_dict":
        save_state_export(model, meta, spec, target)
        result["sidecar"] = str(target.with_suffix(".json"))
        rebuilt = load_state_export(target)
        result["max_abs_diff"] = _max_diff(model, rebuilt, checks)
    elif fmt == "torchscript":
        from .torchscript import load_torchscript, save_torchscript

        save_torchscript(model, example, target)
        result["max_abs_diff"] = _max_diff(model, load_torchscript(target), checks)
    else:
        from .onnx import check_onnx, export_onnx, require_onnx

        require_onnx()
        export_onnx(model, example, target)
        result["max_abs_diff"] = check_onnx(target, model, checks)
    if not result["max_abs_diff"] <= TOLERANCE:
        raise ExportCheckError(f"{target}: the reloaded export and the PyTorch model differ by "
                               f"up to {result['max_abs_diff']:.3g} (tolerance {TOLERANCE:g})")
    return result


@torch.no_grad()
def _max_diff(a: torch.nn.Module, b: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    return max(float((a(x) - b(x)).abs().max()) for x in inputs)


__all__ = ["FORMATS", "ImageModel", "export_run", "load_state_export", "load_wrapped",
           "sample_input"]
