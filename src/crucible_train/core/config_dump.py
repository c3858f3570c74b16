"""Core: turn a run configuration into JSON-safe data with its secrets redacted.

Run configurations are attrs classes, dataclasses, mappings, enums, paths, numpy values and
callables; metrics sinks and ``config.json`` need plain JSON. :func:`dump_config` converts
one into the other, deterministically, and is the single place where secrets are taken out
of a configuration before it is logged anywhere (files, console, W&B, Neptune).

Pure core module: standard library, attrs and numpy only.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import numpy as np

__all__ = [
    "CYCLE",
    "REDACTED",
    "SECRET_WORDS",
    "dump_config",
    "encode_float",
    "is_secret_name",
]

REDACTED = "***"
"""What a redacted secret is replaced with."""

CYCLE = "<cycle>"
"""What a reference back to a container that is still being dumped is replaced with."""

TOO_DEEP = "<too deep>"
"""What a value nested more than :data:`MAX_DEPTH` levels down is replaced with."""

MAX_DEPTH = 100
"""Nesting depth beyond which values are not expanded (protects against RecursionError)."""

MAX_REPR = 200
"""Longest ``repr`` kept for a value of a type :func:`dump_config` does not know."""

SECRET_WORDS = frozenset(
    {"key", "token", "secret", "password", "passwd", "apikey", "credential", "credentials"}
)
"""Word parts of a key name that mark its value as a secret (compared lower-case)."""

# Split points of a key name: separators, and camelCase boundaries ("apiKey" -> api|Key,
# "APIKey" -> API|Key, "key2" stays one part).
_SEPARATORS = re.compile(r"[\s_.\-/:]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def is_secret_name(name: str) -> bool:
    """Whether a key or field name marks its value as a secret.

    The name is split into word parts on ``_``, ``-``, ``.``, ``/``, ``:``, whitespace and
    camelCase boundaries; it is a secret name when any part, lower-cased, is one of
    :data:`SECRET_WORDS`. So ``api_key``, ``WANDB_API_KEY``, ``apiKey``, ``accessToken``,
    ``client-secret`` and ``db.password`` are secret names, while ``keyboard``,
    ``max_tokens``, ``tokenizer`` and ``num_keys`` are not (their parts are whole words
    other than the secret ones).

    Args:
        name: a mapping key or attribute name.

    Returns:
        ``True`` when values under this name must be redacted.
    """
    for chunk in _SEPARATORS.split(name):
        for part in _CAMEL.findall(chunk) or [chunk]:
            if part.lower() in SECRET_WORDS:
                return True
    return False


def encode_float(value: float) -> float | str:
    """A float as stored in JSON: itself when finite, else ``"NaN"``/``"Infinity"``/``"-Infinity"``.

    Strict JSON has no NaN or infinities (Python's ``json`` writes bare ``NaN``, which
    most other readers reject), so non-finite values are written as these strings.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def dump_config(obj: Any, *, secrets: Iterable[str] = ()) -> Any:
    """Convert a configuration object to JSON-safe data, redacting secrets.

    Conversion rules, first match wins:

    * ``None``, booleans, ints and strings stay as they are; floats stay unless they are
      NaN or infinite, which become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
    * an :class:`enum.Enum` member becomes its (dumped) ``value``;
    * numpy scalars become the matching Python scalar; numpy arrays become (nested)
      lists, in full (large arrays are not summarised: log a shape instead if that matters);
    * an object with a callable ``to_dict()`` becomes its dumped result;
    * attrs instances and dataclass instances become a mapping of field name to value;
    * mappings become dicts with string keys (non-string keys are dumped and, unless
      already strings, written as their JSON text: ``1`` -> ``"1"``), in the original order;
    * lists and tuples become lists; sets and frozensets become lists sorted by value
      when the values can be compared, else by their ``repr`` (so output is stable);
    * :class:`pathlib.PurePath` becomes ``str(path)``; ``datetime``/``date``/``time``
      become ISO 8601 text; ``bytes``/``bytearray``/``memoryview`` become ``"<N bytes>"``;
    * classes, functions and other callables become ``"module.qualname"``;
    * anything else becomes its ``repr``, cut to :data:`MAX_REPR` characters.

    A container met again while it is still being dumped (a cycle) becomes ``"<cycle>"``;
    values nested deeper than :data:`MAX_DEPTH` become ``"<too deep>"``.

    Redaction (both rules apply everywhere, at any depth):

    * by name: the value under a mapping key or attrs/dataclass field whose name
      :func:`is_secret_name` accepts becomes ``"***"`` (``None`` stays ``None``, so the
      output still shows that the secret was unset);
    * by value: every occurrence of a string from ``secrets`` inside any output string
      (values, keys, reprs, even inside a URL) is replaced by ``"***"``. Longer secrets
      are replaced first; empty strings are ignored. Numbers are never altered, so a
      purely numeric secret is only caught by name.

    Args:
        obj: the configuration (any object).
        secrets: secret values to scrub wherever they appear.

    Returns:
        Data made of dicts, lists, strings, ints, finite floats, booleans and ``None``:
        ``json.dumps(result, allow_nan=False)`` always succeeds.
    """
    scrub = _scrubber(secrets)
    return _Dumper(scrub).dump(obj, 0)


def _scrubber(secrets: Iterable[str]) -> Callable[[str], str]:
    ordered = sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True)
    if not ordered:
        return lambda text: text

    def scrub(text: str) -> str:
        for secret in ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    return scrub


def _qualified_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _sorted_items(items: list[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        # Mixed types (1 and "a") do not compare; repr order is still stable run to run.
        return sorted(items, key=repr)


class _Dumper:
    """One :func:`dump_config` call: the scrubber and the containers being dumped."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        self._scrub = scrub
        self._active: set[int] = set()  # ids of containers on the current path

    def dump(self, obj: Any, depth: int) -> Any:
        # 1. scalars that are already JSON (Enum first: IntEnum/StrEnum are int/str too)
        if obj is None:
            return None
        if isinstance(obj, enum.Enum):
            return self.dump(obj.value, depth)
        if isinstance(obj, bool):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return self._float(float(obj))
        if isinstance(obj, str):
            return self._scrub(str(obj))
        # 2. numpy
        if isinstance(obj, np.generic):
            return self._numpy_scalar(obj, depth)
        # 3. simple text forms
        if isinstance(obj, pathlib.PurePath):
            return self._scrub(str(obj))
        if isinstance(obj, datetime.date | datetime.time):
            return self._scrub(obj.isoformat())
        if isinstance(obj, bytes | bytearray | memoryview):
            return f"<{memoryview(obj).nbytes} bytes>"
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        # 4. containers and structured objects (cycle-checked)
        if id(obj) in self._active:
            return CYCLE
        self._active.add(id(obj))
        try:
            return self._structured(obj, depth + 1)
        finally:
            self._active.discard(id(obj))

    def _float(self, value: float) -> float | str:
        encoded = encode_float(value)
        return self._scrub(encoded) if isinstance(encoded, str) else encoded

    def _numpy_scalar(self, obj: np.generic, depth: int) -> Any:
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return self._float(float(obj))
        item = obj.item()
        if isinstance(item, np.generic):  # no Python equivalent (e.g. longdouble complex)
            return self._repr(obj)
        return self.dump(item, depth)

    def _structured(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, np.ndarray):
            return self.dump(obj.tolist(), depth)
        to_dict = getattr(obj, "to_dict", None)
        if callable(to_dict) and not isinstance(obj, type):
            try:
                converted = to_dict()
            except Exception:  # a broken to_dict must not lose the whole config
                return self._repr(obj)
            return self.dump(converted, depth)
        if not isinstance(obj, type) and attrs.has(type(obj)):
            fields = attrs.fields(type(obj))
            return self._fields(((field.name, getattr(obj, field.name)) for field in fields), depth)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = dataclasses.fields(obj)
            return self._fields(((field.name, getattr(obj, field.name)) for field in fields), depth)
        if isinstance(obj, Mapping):
            return self._fields(obj.items(), depth)
        if isinstance(obj, list | tuple):
            return [self.dump(item, depth) for item in obj]
        if isinstance(obj, set | frozenset):
            return [self.dump(item, depth) for item in _sorted_items(list(obj))]
        if callable(obj):
            return self._scrub(_qualified_name(obj))
        return self._repr(obj)

    def _fields(self, items: Iterable[tuple[Any, Any]], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            name = self._key(key, depth)
            if isinstance(key, str) and is_secret_name(key) and value is not None:
                out[name] = REDACTED
            else:
                out[name] = self.dump(value, depth)
        return out

    def _key(self, key: Any, depth: int) -> str:
        if isinstance(key, str):
            return self._scrub(key)
        dumped = self.dump(key, depth)
        if isinstance(dumped, str):
            return dumped
        return self._scrub(json.dumps(dumped, allow_nan=False, sort_keys=True))

    def _repr(self, obj: Any) -> str:
        try:
            text = repr(obj)
        except Exception:  # a broken __repr__ must not lose the whole config
            text = f"<{_qualified_name(type(obj))} object>"
        # Scrub before cutting, so a secret is never left half-visible at the cut.
        return _cut(self._scrub(text))
