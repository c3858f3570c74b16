"""Describing configuration keys from the settings classes, and YAML with those comments.

Container layer. Every description comes from the settings class that owns the key: its
docstring's ``Args:``, read by :func:`field_descriptions`. So ``config show``, the
configuration reference in ``docs/configuration.md`` and the comments in
``containers.yaml`` say the same thing, written once.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from crucible_train.config import field_specs
from crucible_train.container.backends import Backend
from crucible_train.container.settings import MetricsSettings
from crucible_train.container.train_recipes import TRAIN_KEY
from crucible_train.container.validation import METRICS_PORT
from crucible_train.ports import PORTS
from crucible_train.recipes.settings import TrainSettings

__all__ = [
    "KeyPath",
    "annotated_yaml",
    "describe_keys",
    "field_descriptions",
    "settings_summary",
    "yaml_value",
]

KeyPath = tuple[str, ...]
"""A key in the configuration tree, e.g. ``("training", "local_torch", "seed")``."""

_COMMENT_COLUMN = 22  # where comments start when the key and value are short

_ARGS_ENTRY = re.compile(r"^    ([A-Za-z_]\w*(?:, [A-Za-z_]\w*)*): ?(.*)$")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def _clean(text: str) -> str:
    """Docstring markup to plain text: roles and ``literals`` unwrapped, one line."""
    text = _ROLE.sub(lambda match: match.group(1).rpartition(".")[2], text)
    # Descriptions are read next to YAML, so Python's literals are spelt the YAML way.
    for python, yaml_word in (("None", "null"), ("True", "true"), ("False", "false")):
        text = text.replace(f"``{python}``", yaml_word)
    text = text.replace("``", "")
    text = " ".join(text.split())
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def field_descriptions(schema: type) -> dict[str, str]:
    """Field name → its one-line description, from the ``Args:`` sections of the docstrings.

    The docstring of the class that declares a field is the one place it is described;
    ``config show``, the configuration reference in ``docs/`` and the comments of
    ``containers.yaml`` all come from (or are checked against) it. A subclass documents the
    fields it adds and those whose meaning it changes (a recipe config over its core loop
    config); the rest are read from its bases. An entry may describe several fields at
    once (``beta1, beta2: AdamW betas.``). Markup is removed and a final period dropped.

    Args:
        schema: a settings class (any class with Google-style docstrings).

    Returns:
        The descriptions found: the bases' first, in docstring order, each overridden by
        a subclass that describes it again (a field without one is absent).
    """
    found: dict[str, str] = {}
    for klass in reversed(schema.__mro__):
        if klass is not object:
            found.update(_own_descriptions(klass))
    return found


def _own_descriptions(schema: type) -> dict[str, str]:
    """The descriptions in ``schema``'s own docstring (not inherited)."""
    lines = inspect.cleandoc(schema.__dict__.get("__doc__") or "").splitlines()
    try:
        start = lines.index("Args:") + 1
    except ValueError:
        return {}
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines[start:]:
        if not line.strip() or not line.startswith("    "):
            break  # a blank line or the next section ends the entries
        entry = _ARGS_ENTRY.match(line)
        if entry:
            current = [name.strip() for name in entry.group(1).split(",")]
            for name in current:
                found[name] = [entry.group(2)]
        else:
            for name in current:
                found[name].append(line)
    return {name: _clean(" ".join(parts)) for name, parts in found.items()}


def settings_summary(schema: type) -> str:
    """The first line of a settings class's docstring, as plain text."""
    lines = inspect.cleandoc(schema.__doc__ or "").splitlines()
    return _clean(lines[0]) if lines else ""


def yaml_value(value: Any) -> str:
    """``value`` as YAML on one line (flow style), e.g. ``null``, ``3.0``, ``[a, b]``."""
    text = yaml.safe_dump(
        value, default_flow_style=True, width=math.inf, allow_unicode=True, sort_keys=False
    )
    if text.endswith("\n...\n"):  # the document end marker after a bare scalar
        text = text[: -len("\n...\n")]
    text = text.rstrip("\n")
    if "\n" in text:
        # A string with line breaks: JSON's double-quoted form is valid YAML on one line.
        return json.dumps(value)
    return text


def _port_summary(port: str) -> str:
    protocol = PORTS.get(port)
    if protocol is None:
        return ""
    lines = (protocol.__doc__ or "").strip().splitlines()
    return f"{protocol.__name__}: {lines[0].rstrip('.')}" if lines else protocol.__name__


def describe_keys(
    data: Mapping[str, Any],
    backends: Mapping[str, Mapping[str, Backend]],
    recipes: Mapping[str, type],
) -> tuple[dict[KeyPath, str], frozenset[KeyPath]]:
    """Describe every key of a resolved configuration from its settings class.

    Args:
        data: the resolved configuration (port blocks and ``train``).
        backends: port key → backend name → :class:`Backend`, from the wiring diagram.
        recipes: recipe name → config class.

    Returns:
        ``(descriptions, blocks)``: key path → one-line description, and the paths that
        are blocks of the diagram (written as nested mappings; a settings value that is
        itself a mapping stays on one line).
    """
    descriptions: dict[KeyPath, str] = {}
    blocks: set[KeyPath] = set()

    def settings_block(path: KeyPath, schema: type, summary: str) -> None:
        blocks.add(path)
        descriptions[path] = summary
        for name, text in field_descriptions(schema).items():
            descriptions[(*path, name)] = text

    for port, block in data.items():
        if port == TRAIN_KEY:
            settings_block((TRAIN_KEY,), TrainSettings, settings_summary(TrainSettings))
            for name, schema in recipes.items():
                settings_block((TRAIN_KEY, name), schema, settings_summary(schema))
            continue
        port_backends = backends.get(port, {})
        blocks.add((port,))
        descriptions[(port,)] = _port_summary(port)
        names = ", ".join(sorted(port_backends))
        if port == METRICS_PORT:
            descriptions[(port, "sinks")] = f"sinks every metric goes to, in order; any of {names}"
            for name, text in field_descriptions(MetricsSettings).items():
                descriptions[(port, name)] = text
        else:
            descriptions[(port, "backend")] = f"the adapter serving this port: one of {names}"
        for name in block if isinstance(block, Mapping) else ():
            chosen = port_backends.get(name)
            if chosen is not None:
                none = "" if field_specs(chosen.settings) else " (none)"
                settings_block((port, name), chosen.settings, f"settings of {_name(chosen)}{none}")
    return descriptions, frozenset(blocks)


def _name(backend: Backend) -> str:
    return getattr(backend.adapter, "__name__", str(backend.adapter))


def annotated_yaml(
    data: Mapping[str, Any],
    descriptions: Mapping[KeyPath, str],
    blocks: frozenset[KeyPath],
) -> str:
    """Block-style YAML of ``data`` with a trailing ``# description`` on every described key.

    It parses back (``yaml.safe_load``) to exactly ``data``.

    Args:
        data: plain data (mappings with string keys, lists, scalars).
        descriptions: key path → one-line description (see :func:`describe_keys`).
        blocks: the paths written as nested mappings; any other value is written on
            its key's line.
    """
    lines: list[str] = []

    def emit(mapping: Mapping[str, Any], path: KeyPath, indent: str) -> None:
        for key, value in mapping.items():
            here = (*path, str(key))
            head = f"{indent}{yaml_value(key)}:"
            nested = here in blocks and isinstance(value, Mapping) and bool(value)
            text = head if nested else f"{head} {yaml_value(value)}"
            comment = descriptions.get(here)
            lines.append(f"{text.ljust(_COMMENT_COLUMN)} # {comment}" if comment else text)
            if nested:
                emit(value, here, indent + "  ")

    emit(data, (), "")
    return "".join(f"{line}\n" for line in lines)
