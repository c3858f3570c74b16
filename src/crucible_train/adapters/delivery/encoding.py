"""JSON for the spool (adapter layer): plain-JSON copies, compact lines, atomic JSON files.

Rows, ``sink.json`` and ``state.json`` are all written through :func:`to_json`, so they
share one encoding (compact, NaN and infinities as bare tokens, numpy scalars as plain
numbers).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["json_safe", "read_json", "to_json", "write_json_atomic"]


def json_safe(value: Any, *, _depth: int = 0) -> Any:
    """A copy of ``value`` made of JSON types only (dict, list, str, int, float, bool, None).

    Mappings keep their structure with string keys; sequences and sets become lists;
    numpy scalars and arrays, ``attrs`` instances, paths and enums become their plain
    values; anything else becomes its ``str``. NaN and infinities stay floats (the
    caller decides how to encode them). Deeper than 32 levels becomes ``str``.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if _depth > 32:
        return str(value)
    depth = _depth + 1
    if isinstance(value, Mapping):
        return {str(key): json_safe(item, _depth=depth) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, _depth=depth) for item in value]
    if attrs.has(type(value)):
        return json_safe(attrs.asdict(value, recurse=False), _depth=depth)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value, _depth=depth)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        try:
            return json_safe(tolist(), _depth=depth)
        except (TypeError, ValueError):
            pass
    return str(value)


def _spool_default(value: Any) -> Any:
    """``json.dumps`` hook for spooled payloads: numpy scalars and the like."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return json_safe(value)


def to_json(value: Any) -> str:
    """``value`` as one compact JSON line (NaN and infinities as bare tokens).

    Raises:
        TypeError, ValueError, RecursionError: ``value`` cannot be encoded.
    """
    return json.dumps(value, default=_spool_default, separators=(",", ":"), allow_nan=True)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` so a crash leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(to_json(value))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON value in ``path`` (``OSError`` / ``ValueError`` when it cannot be read)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
