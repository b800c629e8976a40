"""The random state a checkpoint must carry so a resumed run draws what an uninterrupted one
would: the CPU generator always, and every CUDA device's generator where CUDA is present
(dropout, drop-path and weight noise on a GPU draw from those)."""

from __future__ import annotations

from typing import Any

import torch


def rng_state() -> dict[str, Any]:
    """``torch_rng`` (CPU) and, when CUDA is available, ``cuda_rng`` (one per device)."""
    state: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`rng_state`; a CUDA state saved on a machine without CUDA is ignored."""
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    cuda = state.get("cuda_rng")
    if cuda is not None and torch.cuda.is_available():
        devices = torch.cuda.device_count()
        torch.cuda.set_rng_state_all(list(cuda)[:devices])
