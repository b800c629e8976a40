"""TorchScript export: the network is traced (its cells index module lists, which
``torch.jit.script`` cannot compile), the wrapper is scripted (so dtype, layout and channel
handling stay dynamic). TorchScript is deprecated upstream in favour of ``torch.export``;
it is kept because C++ (libtorch) and older deployments still load it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .wrap import ImageModel


def to_torchscript(model: ImageModel, example: torch.Tensor) -> torch.jit.ScriptModule:
    """A ScriptModule computing what ``model`` computes, for any batch size."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecation notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(model.network, model.preprocess(example), check_trace=False)
        return torch.jit.script(model.with_network(traced))


def save_torchscript(model: ImageModel, example: torch.Tensor, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_torchscript(model, example).save(str(path))
    return path


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecation notice
        return torch.jit.load(str(path), map_location="cpu").eval()
