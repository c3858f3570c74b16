"""Reading ``containers.yaml`` layers: strict YAML, files, merging, overrides, ``${VAR}``.

Container layer. Deliberate departures from dependency-injector's own YAML loading (see
the pitfalls in ``reference/style_anchors.md`` §6): the YAML is parsed here, never with
textual interpolation (an environment value containing a newline cannot add keys); a
missing explicit file is an error; the packaged file is read through
:mod:`importlib.resources`, never a path relative to the current directory.
"""

from __future__ import annotations

import copy
import importlib.resources
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from crucible_train.errors import ConfigurationError

__all__ = [
    "PACKAGED_CONFIG",
    "EnvLeaf",
    "StrictLoader",
    "apply_override",
    "from_env",
    "interpolate",
    "load_layer",
    "merge",
    "packaged_source",
    "parse_yaml",
    "raw_text",
    "read_user_file",
    "unset_message",
]

PACKAGED_CONFIG = "containers.yaml"
"""Name of the default configuration shipped inside the ``crucible_train`` package."""


# --- YAML reading -----------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys and reads ``1e-4`` as a float.

    PyYAML silently keeps the last of two equal keys; in a config that means a second
    ``backend:`` line wins without a word. It also follows YAML 1.1, where a float needs
    a dot (``1e-4`` would be the string ``"1e-4"``); learning rates are written that way.
    """


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # unhashable key; construct_mapping reports it properly
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first defined on line {first + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML safely; a syntax error names ``source``, the line and the column."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        context = exc.context_mark
        if exc.problem and exc.context and context is not None and context is not mark:
            # e.g. "... (while parsing a flow sequence started at line 2, column 12)"
            problem += (
                f" ({exc.context} started at line {context.line + 1}, column {context.column + 1})"
            )
        raise ConfigurationError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: invalid YAML: {exc}") from None


def packaged_source() -> tuple[str, str]:
    """The packaged ``containers.yaml``: (display name, text)."""
    resource = importlib.resources.files("crucible_train").joinpath(PACKAGED_CONFIG)
    try:
        text = resource.read_text(encoding="utf-8")
    except OSError as exc:  # a broken installation, not a user error, but say so plainly
        raise ConfigurationError(
            f"the packaged {PACKAGED_CONFIG} cannot be read ({exc.strerror or exc}); "
            "reinstall crucible-train"
        ) from None
    return str(resource), text


def read_user_file(config_file: str | os.PathLike[str], base_dir: Path) -> tuple[str, str]:
    """An explicitly named config file: (absolute path, text). Missing → error."""
    path = Path(os.path.expanduser(os.fspath(config_file)))
    absolute = Path(os.path.normpath(base_dir / path))
    if not absolute.exists():
        raise ConfigurationError(f"config file {absolute} does not exist")
    if not absolute.is_file():
        raise ConfigurationError(f"config file {absolute} is not a regular file")
    try:
        text = absolute.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"config file {absolute} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(
            f"config file {absolute} cannot be read: {exc.strerror or exc}"
        ) from None
    return str(absolute), text


def load_layer(text: str, source: str) -> dict[str, Any]:
    """Parse one layer; it must be a non-empty mapping of port blocks."""
    data = parse_yaml(text, source)
    if data is None:
        # An empty overlay almost always means the wrong file; never run on silence.
        raise ConfigurationError(f"{source}: the file is empty; expected a mapping of port blocks")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{source}: expected a mapping of port blocks at the top level, "
            f"got a {type(data).__name__}"
        )
    return data


def merge(base: Any, overlay: Any) -> Any:
    """Recursive merge: mappings merge key by key; anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


def apply_override(tree: dict[str, Any], override: str) -> str | None:
    """Apply one ``dotted.key=value`` override in place; return a problem or ``None``.

    The value is never quoted in a problem: it may be a secret typed by mistake.
    """
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep:
        return (
            f"override {override!r}: expected key=value, "
            "e.g. training.backend=noop or metrics.sinks=[noop]"
        )
    if not key:
        return "override with an empty key: expected key=value, e.g. training.backend=noop"
    parts = key.split(".")
    if any(not part for part in parts):
        return f"override {key!r}: a dotted key cannot have an empty segment"
    try:
        value = yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError:
        return f"override {key!r}: the value after '=' is not valid YAML"
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            return (
                f"override {key!r}: {where} is not a mapping, so it has no key {parts[depth + 1]!r}"
            )
        node = child
    last = parts[-1]
    node[last] = merge(node[last], value) if last in node else value
    return None


# --- environment interpolation ----------------------------------------------------------

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


@attrs.frozen(kw_only=True)
class EnvLeaf:
    """A string leaf that referenced environment variables, after substitution.

    Attributes:
        raw: the text as written (``${HF_TOKEN:}``); holds no secret, safe to show.
        text: the substituted text, or ``None`` when a variable without default is unset.
        variables: every variable referenced, in order.
        unset: referenced variables that were unset (or empty) and had no default.
        whole: the leaf was exactly one reference (so its type may be converted).
        default: the default of a ``whole`` reference (``None`` when it had none).
    """

    raw: str
    text: str | None = attrs.field(repr=False)
    variables: tuple[str, ...]
    unset: tuple[str, ...]
    whole: bool
    default: str | None = attrs.field(repr=False)


def _interpolate_leaf(text: str, environ: Mapping[str, str]) -> str | EnvLeaf:
    matches = list(_REFERENCE.finditer(text))
    if not matches:
        return text
    unset: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name, "")
        # Like the shell's ${NAME:-default}: an empty variable also takes the default.
        if value == "":
            if default is None:
                unset.append(name)
                return ""
            return default
        return value

    substituted = _REFERENCE.sub(substitute, text)
    whole = len(matches) == 1 and matches[0].span() == (0, len(text))
    return EnvLeaf(
        raw=text,
        text=None if unset else substituted,
        variables=tuple(match.group(1) for match in matches),
        unset=tuple(unset),
        whole=whole,
        default=matches[0].group(2) if whole else None,
    )


def interpolate(tree: Any, environ: Mapping[str, str]) -> Any:
    """Replace string leaves holding ``${...}`` with :class:`EnvLeaf`; keys are untouched.

    This runs on the parsed tree, so a value containing newlines or ``key: value`` text
    stays one string and can never add structure.
    """
    if isinstance(tree, dict):
        return {key: interpolate(value, environ) for key, value in tree.items()}
    if isinstance(tree, list):
        return [interpolate(item, environ) for item in tree]
    if isinstance(tree, str) and "${" in tree:
        return _interpolate_leaf(tree, environ)
    return tree


def unset_message(path: str, leaf: EnvLeaf) -> str:
    """The problem for a leaf whose variables are unset and have no default."""
    names = ", ".join(leaf.unset)
    plural = "s" if len(leaf.unset) > 1 else ""
    verb = "are" if plural else "is"
    return (
        f"{path}: environment variable{plural} {names} {verb} not set "
        f"(referenced as {leaf.raw!r}; export it or write ${{NAME:default}})"
    )


def from_env(value: Any) -> bool:
    """Whether any part of ``value`` came from an environment variable."""
    if isinstance(value, EnvLeaf):
        return True
    if isinstance(value, dict):
        return any(from_env(item) for item in value.values())
    if isinstance(value, list):
        return any(from_env(item) for item in value)
    return False


def raw_text(value: Any) -> Any:
    """Values of unknown keys: keep what was written, without resolving anything."""
    if isinstance(value, EnvLeaf):
        return value.raw
    if isinstance(value, dict):
        return {key: raw_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [raw_text(item) for item in value]
    return value
