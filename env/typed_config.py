"""Build frozen dataclasses from YAML mappings, refusing unknown keys and wrong types.

Config files are written by hand; a typo such as ``horizn: 50`` must not be silently
ignored (the run would use the default and nobody would notice). Every config in the
project, the dataset spec as well as the Tune experiment files, goes through
:func:`build_dataclass`, so they all fail the same way: one line naming the file, the
key and the problem.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from env.errors import InputError

T = TypeVar("T")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__})") from exc
    if not text.strip():
        raise InputError(path, "file is empty")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(path, f"{line}invalid YAML ({problem})") from exc
    if not isinstance(data, dict):
        raise InputError(path, f"top level must be a mapping, got {type(data).__name__}")
    return data


def build_dataclass(cls: type[T], data: Any, source: str | Path, where: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``, checking keys and value types.

    Nested dataclasses, ``list[...]``/``tuple[...]``, ``dict[str, ...]``, ``X | None`` and
    ``Literal[...]`` annotations are understood; ints are accepted where floats are
    expected (YAML writes ``1`` for ``1.0``), but booleans are never taken for numbers.
    """
    if not isinstance(data, Mapping):
        raise InputError(source, f"expected a mapping, got {_kind(data)}", where or None)
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.metadata.get("yaml", True)  # fields set by code, never by the file
    }
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise InputError(
            source, f"unknown key(s) {', '.join(unknown)} (allowed: {allowed})", where or None
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], source, key_path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise InputError(source, "required key is missing", key_path)
    try:
        return cls(**kwargs)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(source, str(exc), where or None) from exc


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _coerce(annotation: Any, value: Any, source: str | Path, key: str) -> Any:  # noqa: C901
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, source, key)
            except InputError as exc:
                errors.append(exc.problem)
        raise InputError(source, errors[0] if len(errors) == 1 else "; ".join(errors), key)
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise InputError(source, f"must be one of {choices}, got {value!r}", key)
        return value
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, source, key)  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(source, f"expected a list, got {_kind(value)}", key)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError(
                    source, f"expected a list of {len(args)} items, got {len(value)}", key
                )
            return tuple(
                _coerce(a, v, source, f"{key}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item_type = args[0] if args else Any
        items = [_coerce(item_type, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise InputError(source, f"expected a mapping, got {_kind(value)}", key)
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(value_type, v, source, f"{key}.{k}") for k, v in value.items()}
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(source, f"expected a number, got {_kind(value)} {value!r}", key)
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(source, f"expected a whole number, got {_kind(value)} {value!r}", key)
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise InputError(source, f"expected true or false, got {_kind(value)} {value!r}", key)
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise InputError(source, f"expected text, got {_kind(value)} {value!r}", key)
        return value
    return value
