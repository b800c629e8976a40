"""``max_model_size``: the retrained network's parameters stay under a cap, whatever the
search proposed (a multi-trial search also skips candidates over it, as ``max_params``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import RunConfig
from ..data import ImageData
from ..errors import ConfigError
from ..pipeline import build_spec, execute, read_architecture
from ..run import RunDir, get_logger
from ..spaces import make_space
from ..spaces.base import build_network
from ..training.budget import Deadline
from .run_folder import seconds_left

MIN_CHANNELS = 4


def search_within_size(cfg: RunConfig, run: RunDir, data: ImageData, end: Deadline,
                       resume: bool, cap: int,
                       on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> None:
    """Search, then retrain the architecture at the widest ``network.channels`` (halving
    from the configured one) whose network has at most ``cap`` parameters."""
    left = seconds_left(end)
    if not (resume and run.phase_state("search") == "done"):
        execute(cfg, run, ("search",), resume=resume, data=data,
                budget_seconds=None if left is None else cfg.search_fraction * left)
    space = make_space(cfg.space, **cfg.space_options)
    arch = space.validate(read_architecture(run))
    previous = None
    while True:
        params = sum(p.numel() for p in
                     build_network(space, arch, build_spec(cfg, data)).parameters())
        if params <= cap:
            break
        if cfg.network.channels <= MIN_CHANNELS or params == previous:
            raise ConfigError(
                f"the searched architecture has {params:,} parameters at its narrowest "
                f"(the {cfg.space} space at {cfg.network.channels} channels), over "
                f"max_model_size={cap:,}; raise max_model_size, or search a space of "
                "smaller networks")
        previous = params
        narrower = max(MIN_CHANNELS, cfg.network.channels // 4 * 2)
        get_logger().warning("the searched network has %s parameters, over max_model_size=%s: "
                             "narrowing it from %d to %d channels", f"{params:,}", f"{cap:,}",
                             cfg.network.channels, narrower)
        cfg.network.channels = narrower
    execute(cfg, run, ("retrain",), resume=resume, arch=arch, data=data,
            budget_seconds=seconds_left(end), on_epoch=on_epoch)

