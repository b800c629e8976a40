"""Type checks for options given as text (``--set``, YAML files) against the typed dataclass
fields they fill (run config, network, training, a strategy's options).

A value of the wrong type otherwise surfaces late as a ``TypeError`` deep inside a phase,
sometimes only after a whole search has run; checking every value against the field's
annotation first gives one clear message naming the option before anything starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any

from .errors import ConfigError

_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
          type(None): "null"}


@cache
def _hints(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (fields written as strings by ``from __future__
    import annotations`` become real types)."""
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    if tp in _NAMES:
        return _NAMES[tp]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return "a list" if item is Any else f"a list of {_plural(item)}"
    if origin is dict or tp is dict:
        return "a mapping of options"
    if dataclasses.is_dataclass(tp):
        return "a mapping of options"
    return getattr(tp, "__name__", str(tp))


def _plural(tp: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}.get(
        tp, _describe(tp))


_FAIL = object()


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (with the lenient conversions YAML text needs), or _FAIL."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            return None if type(None) in args else _FAIL
        # Exact types first, so a str option in "str | list[float]" keeps a string as is.
        for arg in sorted(args, key=lambda a: 0 if isinstance(a, type) and
                          type(value) is a else 1):
            if arg is type(None):
                continue
            out = _coerce(value, arg)
            if out is not _FAIL:
                return out
        return _FAIL
    if tp is bool:
        return value if isinstance(value, bool) else _FAIL
    if tp is int:
        if isinstance(value, bool):
            return _FAIL
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _FAIL
    if tp is float:
        if isinstance(value, bool):
            return _FAIL
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                return _FAIL
        return _FAIL
    if tp is str:
        return value if isinstance(value, str) else _FAIL
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            return _FAIL
        (item,) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item) for v in value]
        return _FAIL if any(v is _FAIL for v in items) else items
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, (dict, tp)) else _FAIL
    if origin is dict or tp is dict:
        return value if isinstance(value, dict) else _FAIL
    return value  # a type this check does not know: the option's own checks decide


def check_options(cls: type, values: dict[str, Any], section: str = "") -> dict[str, Any]:
    """``values`` with every known field of dataclass ``cls`` converted to its annotated
    type; raises :class:`ConfigError` naming the first option of the wrong type.

    Unknown keys are left alone (the dataclass's own loader reports them with the list of
    known options). ``section`` prefixes option names in messages (``search.epochs``).
    """
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    out = dict(values)
    for key, value in values.items():
        if key not in known or key not in hints:
            continue
        tp = hints[key]
        converted = _coerce(value, tp)
        if converted is _FAIL:
            name = f"{section}.{key}" if section else key
            raise ConfigError(f"{name} must be {_describe(tp)}, got {_show(value)}")
        out[key] = converted
    return out


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null (no value)"
    if isinstance(value, dict):
        return f"a mapping {value!r}"
    return f"{value!r} ({type(value).__name__})"
