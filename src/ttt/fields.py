"""Dataclass settings from untrusted input (JSON files, YAML, command-line overrides).

A settings dataclass built from a user's mapping would otherwise fail with a bare `TypeError`
("unexpected keyword argument") for a typo, or deep inside a comparison (`'abc' <= 0`) for a value of the
wrong type. `check_types` and `from_mapping` turn both into one-line `ValueError`s that name where the
setting came from (`decoding.json: steps`, `--set max_steps`). Standard library only.
"""
from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from typing import Any


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is Any:
        return "anything"
    if hint is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}s"
    if origin is tuple:
        return f"a list of {len(typing.get_args(hint))} values"
    if origin is dict or hint is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


class _Mismatch(Exception):
    pass


def _convert(value: Any, hint: Any) -> Any:
    """`value` as `hint` asks (an int where a float is expected becomes a float), or `_Mismatch`."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _convert(value, arg)
            except _Mismatch:
                pass
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:  # numbers.Integral: numpy integers count too
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return value if type(value) is int else int(value)
        raise _Mismatch
    if hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return value if type(value) is float else float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item,) = typing.get_args(hint)
        return [_convert(v, item) for v in value]
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise _Mismatch
        return tuple(_convert(v, a) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        raise _Mismatch
    return value


def check_types(obj: Any, where: str | None = None) -> None:
    """Convert or refuse each field of dataclass instance `obj` per its type hint (call from `__post_init__`).

    An int given for a float field becomes a float; anything else of the wrong type is a ValueError such as
    `GenerationConfig: steps must be an integer, got 'abc'`."""
    where = where or type(obj).__name__
    hints = _hints(type(obj))
    for name in (f.name for f in dataclasses.fields(obj)):
        hint, value = hints[name], getattr(obj, name)
        try:
            converted = _convert(value, hint)
        except _Mismatch:
            raise ValueError(f"{where}: {name} must be {_describe(hint)}, got {value!r}") from None
        if converted is not value:
            object.__setattr__(obj, name, converted)


def convert(cls: type, name: str, value: Any, where: str) -> Any:
    """`value` for field `name` of dataclass `cls`, converted per its type hint, or a ValueError naming `where`."""
    hint = _hints(cls)[name]
    try:
        return _convert(value, hint)
    except _Mismatch:
        raise ValueError(f"{where} must be {_describe(hint)}, got {value!r}") from None


def from_mapping(cls: type, data: Any, where: str) -> Any:
    """`cls(**data)` with unknown keys and wrong types as ValueErrors naming `where` (a file, a flag)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    known = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown} (known: {', '.join(known)})")
    kwargs = {key: convert(cls, key, value, f"{where}: {key}") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
