"""Search strategies, found by name in one registry (one file + one line per strategy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .base import SearchContext, SearchResult, Strategy

_REGISTRY: dict[str, tuple[type[Strategy], dict[str, Any], str]] = {}


def register_strategy(name: str, description: str, **defaults: Any
                      ) -> Callable[[type[Strategy]], type[Strategy]]:
    """Register ``cls`` under ``name`` with preset options (e.g. darts2 = darts, order 2)."""

    def wrap(cls: type[Strategy]) -> type[Strategy]:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is already registered")
        _REGISTRY[name] = (cls, defaults, description)
        return cls

    return wrap


def available_strategies() -> dict[str, str]:
    _load_builtins()
    return {name: desc for name, (_, _, desc) in sorted(_REGISTRY.items())}


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a registered strategy; unknown names and options give a clear error."""
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        )
    cls, defaults, _ = _REGISTRY[name]
    known = set(cls.option_names())
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"strategy {name!r} has no option(s) {unknown}; its options are {sorted(known)}"
        )
    kwargs = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    return cls(**kwargs)


def _load_builtins() -> None:
    # Importing the modules runs their @register_strategy lines.
    from . import darts  # noqa: F401


__all__ = [
    "SearchContext",
    "SearchResult",
    "Strategy",
    "available_strategies",
    "make_strategy",
    "register_strategy",
]
