"""JSON encoding of the domain dataclasses a store persists (config, track records, timeline entries)."""

from __future__ import annotations

import base64
import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(obj: object) -> str:
    return json.dumps(_plain(obj), separators=(",", ":"), sort_keys=True)


def from_json(cls: type[T], text: str | bytes) -> T:
    value: T = _build(cls, json.loads(text))
    return value


def _plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _build(cls: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(cls)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(cls) if a is not type(None)]
        return _build(inner, data)
    if origin is tuple:
        args = typing.get_args(cls)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in data)
        return tuple(_build(a, v) for a, v in zip(args, data, strict=True))
    if cls is bytes:
        return base64.b64decode(data)
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        factory: Any = cls
        return factory(**{k: _build(hints[k], v) for k, v in data.items() if k in names})
    return data
