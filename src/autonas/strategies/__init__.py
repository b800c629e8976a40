"""Search strategies, found by name in one registry (one file + one line per strategy).

A name may have several implementations for different kinds of space (DARTS on cell
spaces and on user model spaces): ``make_strategy`` picks the one whose ``spaces`` accept
the space being searched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .base import SearchContext, SearchResult, Strategy


@dataclass
class _Entry:
    cls: type[Strategy]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)

    def accepts(self, space: object | None) -> bool:
        return space is None or not self.cls.spaces or isinstance(space, self.cls.spaces)


_REGISTRY: dict[str, list[_Entry]] = {}


def register_strategy(name: str, description: str, **defaults: Any
                      ) -> Callable[[type[Strategy]], type[Strategy]]:
    """Register ``cls`` under ``name`` with preset options (e.g. darts2 = darts, order 2)."""

    def wrap(cls: type[Strategy]) -> type[Strategy]:
        entries = _REGISTRY.setdefault(name, [])
        if any(e.cls is cls for e in entries):
            raise ValueError(f"strategy {name!r} is already registered for {cls.__name__}")
        entries.append(_Entry(cls, description, defaults))
        return cls

    return wrap


def available_strategies() -> dict[str, str]:
    _load_builtins()
    return {name: entries[0].description for name, entries in sorted(_REGISTRY.items())}


def make_strategy(name: str, space: object | None = None, **options: Any) -> Strategy:
    """Build a registered strategy for ``space``; unknown names, options and unsupported
    spaces give a clear error."""
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        )
    matching = [e for e in _REGISTRY[name] if e.accepts(space)]
    if not matching:
        kinds = ", ".join(sorted({s.__name__ for e in _REGISTRY[name] for s in e.cls.spaces}))
        raise ConfigError(f"strategy {name!r} cannot search a {type(space).__name__}; it "
                          f"searches {kinds}")
    entry = matching[0]
    known = set(entry.cls.option_names())
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"strategy {name!r} has no option(s) {unknown}; its options are {sorted(known)}"
        )
    # Only absent keys take the defaults: an explicit None (YAML null) is a value, e.g.
    # ``search_images: null`` = no cap, and config.yaml must record it as given.
    kwargs = {**entry.defaults, **options}
    return entry.cls(**kwargs)


def _load_builtins() -> None:
    # Importing the modules runs their @register_strategy lines.
    from . import (
        bohb,  # noqa: F401
        darts,  # noqa: F401
        darts_minus,  # noqa: F401
        darts_model,  # noqa: F401
        enas,  # noqa: F401
        enas_model,  # noqa: F401
        evolution,  # noqa: F401
        gdas,  # noqa: F401
        gdas_model,  # noqa: F401
        grid_search,  # noqa: F401
        nsga2,  # noqa: F401
        p_darts,  # noqa: F401
        pc_darts,  # noqa: F401
        proxyless,  # noqa: F401
        random_search,  # noqa: F401
        reinforce,  # noqa: F401
        spos,  # noqa: F401
        spos_model,  # noqa: F401
        tpe,  # noqa: F401
    )


__all__ = [
    "SearchContext",
    "SearchResult",
    "Strategy",
    "available_strategies",
    "make_strategy",
    "register_strategy",
]
