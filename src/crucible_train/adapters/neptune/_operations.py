"""Neptune 1.x ``executeOperations`` bodies (adapter layer, pure functions).

Each function turns one sink call into the JSON operations the server takes
(``PROTOCOLS.md`` B.2 step 8). The value rules follow neptune-client 1.x, so a run logged
here looks the same as one logged with the SDK:

* hyper-parameters are flattened to ``parameters/a/b`` leaves; ``bool`` -> ``assignBool``;
  an ``int`` in the 32-bit range -> ``assignInt`` (the server's int is 32-bit), a larger
  one -> ``assignFloat`` (the SDK's ``stringify_unsupported`` rule); a finite float ->
  ``assignFloat``; NaN/inf -> ``assignString`` ``"nan"``/``"inf"``/``"-inf"`` (float fields
  cannot hold them); strings -> ``assignString``; lists -> their JSON text; ``None`` ->
  ``"None"``;
* metrics are series: numbers (ints and bools too, as 1.0/0.0) -> ``logFloats``, strings ->
  ``logStrings``. Non-finite values are **dropped** from float series, as the SDK does by
  default (``NEPTUNE_SKIP_NON_FINITE_METRICS``): the server's float series cannot hold
  them and JSON cannot carry them. The caller reports each dropped name once;
* string fields are cut to 16384 characters and string-series entries to 1000, the
  SDK's limits (``String.MAX_VALUE_LENGTH``, ``MAX_STRING_SERIES_VALUE_LENGTH``).

Operations are plain dicts: ``{"path": "a/b", "<operation>": {...}}``.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from crucible_train.errors import MetricsSinkError

__all__ = [
    "MAX_SERIES_STRING_LENGTH",
    "MAX_STRING_LENGTH",
    "Operation",
    "failed_operation",
    "field_path",
    "hparam_operations",
    "merge_operations",
    "metric_operations",
    "start_operations",
    "text_operation",
]

Operation = dict[str, Any]

MAX_STRING_LENGTH: Final = 16384
"""Longest string field value; longer values are cut (neptune-client 1.x ``String``)."""

MAX_SERIES_STRING_LENGTH: Final = 1000
"""Longest string-series entry; longer entries are cut (neptune-client 1.x)."""

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_SERIES: Final = frozenset({"logFloats", "logStrings"})


def field_path(name: str, *, prefix: str = "") -> str:
    """A Neptune field path: ``/``-separated, without empty segments.

    Raises:
        MetricsSinkError: nothing is left of the name once empty segments are removed.
    """
    segments = [segment for segment in f"{prefix}/{name}".split("/") if segment]
    if not segments or (prefix and len(segments) == len(prefix.split("/"))):
        raise MetricsSinkError(f"field name {name!r} is empty; use a non-empty name")
    return "/".join(segments)


def _number_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def _assign(path: str, value: Any) -> Operation:
    if isinstance(value, bool | np.bool_):
        return {"path": path, "assignBool": {"value": bool(value)}}
    if isinstance(value, numbers.Integral):
        number = int(value)
        if _INT32_MIN <= number <= _INT32_MAX:
            return {"path": path, "assignInt": {"value": number}}
        return {"path": path, "assignFloat": {"value": float(number)}}
    if isinstance(value, numbers.Real):
        number_f = float(value)
        if math.isfinite(number_f):
            return {"path": path, "assignFloat": {"value": number_f}}
        return {"path": path, "assignString": {"value": _number_text(number_f)}}
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "None"
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        text = json.dumps(items, default=str)
    else:
        text = str(value)
    return {"path": path, "assignString": {"value": _cut(text, MAX_STRING_LENGTH)}}


def _flatten(config: Mapping[Any, Any], prefix: str) -> Iterable[tuple[str, Any]]:
    for key, value in config.items():
        path = field_path(str(key), prefix=prefix)
        if isinstance(value, Mapping):
            yield from _flatten(value, path)
        else:
            yield path, value


def hparam_operations(config: Mapping[str, Any]) -> list[Operation]:
    """``assign*`` operations for a (nested) configuration, under ``parameters/``."""
    return [_assign(path, value) for path, value in _flatten(config, "parameters")]


def metric_operations(
    metrics: Mapping[str, Any], *, step: int, timestamp_ms: int
) -> tuple[list[Operation], list[str]]:
    """One series point per metric at ``step``.

    Returns:
        The operations, and the names of the non-finite values that were dropped.
    """
    operations: list[Operation] = []
    dropped: list[str] = []
    for name, value in metrics.items():
        path = field_path(name)
        if isinstance(value, str):
            entry: dict[str, Any] = {"value": _cut(value, MAX_SERIES_STRING_LENGTH)}
            kind = "logStrings"
        else:
            number = float(value)
            if not math.isfinite(number):
                dropped.append(name)
                continue
            entry = {"value": number}
            kind = "logFloats"
        entry["step"] = float(step)
        entry["timestampMilliseconds"] = timestamp_ms
        operations.append({"path": path, kind: {"entries": [entry]}})
    return operations, dropped


def text_operation(key: str, text: str) -> tuple[Operation, bool]:
    """An ``assignString`` of ``text`` at ``key``, and whether the text had to be cut."""
    cut = _cut(text, MAX_STRING_LENGTH)
    return {"path": field_path(key), "assignString": {"value": cut}}, len(cut) < len(text)


def start_operations(*, name: str | None, tags: Sequence[str]) -> list[Operation]:
    """What the SDK writes when a run starts: ``sys/name``, ``sys/failed=false``, tags."""
    operations: list[Operation] = []
    if name:
        operations.append({"path": "sys/name", "assignString": {"value": name}})
    operations.append({"path": "sys/failed", "assignBool": {"value": False}})
    if tags:
        operations.append({"path": "sys/tags", "insertStrings": {"values": list(tags)}})
    return operations


def failed_operation() -> Operation:
    """How a run is marked failed: there is no close call in the 1.x API."""
    return {"path": "sys/failed", "assignBool": {"value": True}}


def _kind(operation: Operation) -> str:
    return next(key for key in operation if key != "path")


def merge_operations(operations: Iterable[Operation]) -> list[Operation]:
    """Group operations by path and merge neighbours of one kind, as the SDK does.

    Operations on different paths are independent, so grouping by path (in order of first
    appearance) keeps every path's own order. Within a path, consecutive series points are
    merged into one ``logFloats``/``logStrings``, consecutive ``insertStrings`` into one,
    and of consecutive assignments of one kind only the last is kept. The inputs are not
    modified.
    """
    by_path: dict[str, list[Operation]] = {}
    for operation in operations:
        path = operation["path"]
        kind = _kind(operation)
        group = by_path.setdefault(path, [])
        previous = group[-1] if group else None
        if previous is not None and _kind(previous) == kind:
            if kind in _SERIES:
                previous[kind]["entries"].extend(operation[kind]["entries"])
                continue
            if kind == "insertStrings":
                previous[kind]["values"].extend(operation[kind]["values"])
                continue
            if kind.startswith("assign"):
                group[-1] = operation
                continue
        group.append(_copy(operation, kind))
    return [operation for group in by_path.values() for operation in group]


def _copy(operation: Operation, kind: str) -> Operation:
    """A copy whose lists may be extended without touching the caller's operation."""
    body = dict(operation[kind])
    for key in ("entries", "values"):
        if key in body:
            body[key] = list(body[key])
    return {"path": operation["path"], kind: body}
