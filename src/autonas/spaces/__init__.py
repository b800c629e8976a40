"""Search spaces, found by name in one registry; a user space is ``path/to/file.py:Class``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import BuildSpec, SearchSpace

_REGISTRY: dict[str, tuple[Callable[..., SearchSpace], str]] = {}


def register_space(name: str, description: str
                   ) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    def wrap(factory: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        if name in _REGISTRY:
            raise ValueError(f"space {name!r} is already registered")
        _REGISTRY[name] = (factory, description)
        return factory

    return wrap


def available_spaces() -> dict[str, str]:
    _load_builtins()
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def make_space(name: str, **options: Any) -> SearchSpace:
    """A registered space by name, or a class from a file: ``my_space.py:MySpace``."""
    _load_builtins()
    if name in _REGISTRY:
        factory = _REGISTRY[name][0]
    elif ":" in name and name.split(":", 1)[0].endswith(".py"):
        factory = _load_from_file(name)
    else:
        raise ConfigError(f"unknown space {name!r}; available: {', '.join(sorted(_REGISTRY))}, "
                          "or a user space as path/to/file.py:ClassName")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(options) - set(params)) if not accepts_any else []
    if unknown:
        raise ConfigError(f"space {name!r} has no option(s) {unknown}; its options are "
                          f"{sorted(params)}")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"cannot build space {name!r} with options {options}: {exc}") from None


def _load_from_file(spec: str) -> Callable[..., SearchSpace]:
    path_text, cls_name = spec.rsplit(":", 1)
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"space file {path} does not exist (from {spec!r})")
    module_name = f"autonas_user_space_{abs(hash(str(path)))}"
    if module_name in sys.modules:
        module = sys.modules[module_name]
    else:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(f"cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # a user's file: report, don't crash deep inside
            del sys.modules[module_name]
            raise ConfigError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ConfigError(f"{path} defines no {cls_name!r}")
    return cls


def _load_builtins() -> None:
    # Importing the modules runs their @register_space lines.
    from . import (
        darts,  # noqa: F401
        macro,  # noqa: F401
        medmnist_cnn,  # noqa: F401
        resblock,  # noqa: F401
    )


__all__ = ["BuildSpec", "SearchSpace", "available_spaces", "make_space", "register_space"]
