"""ONNX export (``torch.onnx.export`` with the dynamo exporter, dynamic batch axis), checked
by running the file in onnxruntime and comparing with PyTorch on the same inputs.

Unlike the TorchScript module, an ONNX graph has one input signature, fixed at export: the
input ``images`` has the training data's dtype (uint8 for image files and MedMNIST, else
float32) and layout (``N,C,H,W`` for a run folder's model, the layout given to ``fit`` for
a saved ImageClassifier) with the trained channels, height and width; only the batch axis
is dynamic. onnxruntime refuses any other dtype or rank, so callers convert first (e.g.
float 0-1 images to uint8 with ``(x * 255).round().astype(np.uint8)``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import AutonasError, ConfigError
from .wrap import ImageModel

TOLERANCE = 1e-4
"""Largest accepted |onnxruntime - PyTorch| on probabilities (float32 kernels differ)."""


class ExportCheckError(AutonasError):
    """The exported file computes something else than the PyTorch model."""


def require_onnx() -> None:
    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m)
               is None]
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}: install them with "
                          "pip install 'autonas[export]'")


def export_onnx(model: ImageModel, example: torch.Tensor, path: str | Path) -> Path:
    """Write ``model`` as ONNX; the input ``images`` keeps ``example``'s dtype, rank and
    layout (onnxruntime accepts nothing else), its batch axis is dynamic."""
    require_onnx()
    from torch.export import Dim

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    output = "probabilities" if model.probabilities else "logits"
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                          input_names=["images"], output_names=[output],
                          dynamic_shapes={"x": {0: Dim("batch", min=1, max=1 << 20)}})
    return path


def onnx_outputs(path: str | Path, x: np.ndarray) -> np.ndarray:
    require_onnx()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]


def check_onnx(path: str | Path, model: ImageModel, inputs: Sequence[torch.Tensor],
               tolerance: float = TOLERANCE) -> float:
    """Max |onnxruntime - PyTorch| over ``inputs`` (batches of several sizes); raises
    :class:`ExportCheckError` above ``tolerance``."""
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            expected = model(x).numpy()
            got = onnx_outputs(path, x.numpy())
            if got.shape != expected.shape:
                raise ExportCheckError(f"{path}: onnxruntime returned shape {got.shape} for a "
                                       f"batch of {x.shape[0]}, PyTorch {expected.shape}")
            worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= tolerance:
        raise ExportCheckError(f"{path}: onnxruntime and PyTorch outputs differ by up to "
                               f"{worst:.3g} (tolerance {tolerance:g}); use the TorchScript "
                               "or state_dict export instead")
    return worst
