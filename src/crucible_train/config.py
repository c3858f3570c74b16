"""Field helpers for settings classes: secret and path fields, validators, validation, redaction.

Shared-vocabulary layer (next to :mod:`crucible_train.types`): only the standard library,
attrs and :mod:`crucible_train.errors`. Each backend's settings class lives beside its
adapter (``crucible_train/adapters/<technology>/settings.py``) and is built from the
helpers here; the container (:mod:`crucible_train.container`) parses the YAML,
interpolates environment variables and hands each backend's sub-block to
:func:`validate_settings`.

Field metadata marks the kinds of field that need special treatment:

* :func:`secret_field` - the value is a credential. It may only come from an environment
  variable (``token: ${HF_TOKEN:}``), is shown as ``***`` by :func:`redact` and in
  ``repr``, and is never echoed in a validation message.
* :func:`path_field` - a filesystem path. Relative values are made absolute against the
  directory the command was started in (:func:`resolve_path_fields`), so a config never
  silently means a different directory depending on where a library call happens.
* :func:`required_when_selected_field` - the value may stay ``null`` in the file (the
  packaged ``containers.yaml`` cannot know your W&B project) but must be set once its
  backend is selected; :func:`unset_required_fields` reports it.

Each field is described once, in its settings class's docstring (``Args:``, one entry
per field); :mod:`crucible_train.container.describe` reads it for ``config show``, the
configuration reference and the checks of ``containers.yaml``.

The validators (:func:`not_blank`, :func:`finite`, :func:`greater_than`,
:func:`at_least`, :func:`whole_number`, :func:`one_of`, :func:`http_url`) raise
:class:`~crucible_train.errors.ConfigurationError` with a message that starts with the
field name, so :func:`validate_settings` can prefix the key path, and a settings class
built directly from keyword arguments fails with the library's own error type.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import types
import typing
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

import attrs

from crucible_train.errors import ConfigurationError

__all__ = [
    "PATH_METADATA_KEY",
    "REDACTED",
    "REQUIRED_WHEN_SELECTED_METADATA_KEY",
    "SECRET_METADATA_KEY",
    "FieldSpec",
    "FieldValidator",
    "at_least",
    "coerce_env_text",
    "field_specs",
    "finite",
    "greater_than",
    "http_url",
    "not_blank",
    "one_of",
    "path_field",
    "redact",
    "required_when_selected_field",
    "resolve_path_fields",
    "secret_field",
    "settings_to_dict",
    "unset_required_fields",
    "validate_settings",
    "whole_number",
]

SECRET_METADATA_KEY = "crucible_train.secret_env"
"""attrs metadata key: the environment variable a secret field is read from."""

PATH_METADATA_KEY = "crucible_train.path"
"""attrs metadata key: ``True`` on fields holding a filesystem path."""

REQUIRED_WHEN_SELECTED_METADATA_KEY = "crucible_train.required_when_selected"
"""attrs metadata key: ``True`` on fields that must be set when their backend is selected."""

REDACTED = "***"
"""What a set secret is replaced with for display."""

_MAX_SHOWN = 60  # longest value repr quoted in a message; long values are cut

FieldValidator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
"""The signature of an attrs field validator: ``(instance, attribute, value)``."""


# --- field helpers ----------------------------------------------------------------------


def _mask(value: object) -> str:
    # Used as the attrs ``repr`` of secret fields: show whether it is set, never its value.
    return "None" if value is None else repr(REDACTED)


def secret_field(*, env: str, default: Any = attrs.NOTHING) -> Any:
    """Declare a settings field holding a secret read from environment variable ``env``.

    Give ``default=None`` (with a ``str | None`` annotation) for an optional secret: it
    is simply ``None`` when the variable is unset. Without a default the secret is
    required whenever its backend is selected.

    Args:
        env: the conventional environment variable, e.g. ``"HF_TOKEN"``; named in the
            message when the secret is missing.
        default: ``None`` for an optional secret; omit for a required one.

    Returns:
        An ``attrs.field`` whose ``repr`` masks the value.
    """
    return attrs.field(default=default, repr=_mask, metadata={SECRET_METADATA_KEY: env})


def path_field(*, default: Any = attrs.NOTHING, validator: Any = None) -> Any:
    """Declare a settings field holding a filesystem path (absolute after loading).

    Args:
        default: the default path, usually relative (resolved against the start directory).
        validator: an optional extra attrs validator.

    Returns:
        An ``attrs.field`` marked with :data:`PATH_METADATA_KEY`.
    """
    return attrs.field(default=default, validator=validator, metadata={PATH_METADATA_KEY: True})


def required_when_selected_field(*, validator: Any = None) -> Any:
    """Declare a field that may be ``null`` in the file but is needed once selected.

    Use a ``X | None`` annotation. Validation of an unselected backend accepts ``null``;
    for a selected backend :func:`unset_required_fields` reports it, so a missing W&B
    project is a configuration error at start-up, not a failure on the first metric.

    Args:
        validator: an optional extra attrs validator (it must accept ``None``).

    Returns:
        An ``attrs.field`` defaulting to ``None``, marked with
        :data:`REQUIRED_WHEN_SELECTED_METADATA_KEY`.
    """
    return attrs.field(
        default=None, validator=validator, metadata={REQUIRED_WHEN_SELECTED_METADATA_KEY: True}
    )


# --- validators -------------------------------------------------------------------------
# Each accepts None (the value of an optional field) unless it says otherwise.


def greater_than(bound: float) -> FieldValidator:
    """A validator: the value is ``> bound``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not value > bound:
            raise ConfigurationError(
                f"{attribute.name}: must be greater than {bound:g}, got {value!r}"
            )

    return check


def at_least(bound: float) -> FieldValidator:
    """A validator: the value is ``>= bound``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not value >= bound:
            raise ConfigurationError(f"{attribute.name}: must be at least {bound:g}, got {value!r}")

    return check


def finite(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A validator: a float value is neither infinite nor NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"{attribute.name}: must be a finite number, got {value!r}")


def not_blank(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A validator: a string value holds more than whitespace."""
    if isinstance(value, str) and not value.strip():
        raise ConfigurationError(f"{attribute.name}: must not be empty")


def http_url(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A validator: a string value starts with ``http://`` or ``https://``."""
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{attribute.name}: must start with http:// or https://, got {value!r}"
        )


def whole_number(minimum: int) -> FieldValidator:
    """A validator: an ``int`` (not a ``bool``) that is ``>= minimum``.

    ``None`` passes only when it is the field's default. Unlike the type check of
    :func:`validate_settings`, this also holds when the class is built directly from
    keyword arguments, as adapters do.
    """

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and attribute.default is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(
                f"{attribute.name}: expected a whole number, got {value!r} ({type(value).__name__})"
            )
        if value < minimum:
            raise ConfigurationError(f"{attribute.name}: must be at least {minimum}, got {value}")

    return check


def one_of(choices: Collection[str]) -> FieldValidator:
    """A validator: the value is one of ``choices`` (``None`` is refused)."""
    listed = ", ".join(repr(choice) for choice in choices)

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ConfigurationError(f"{attribute.name}: expected one of {listed}, got {value!r}")

    return check


# --- settings shared by every recipe ----------------------------------------------------


# --- names that moved -------------------------------------------------------------------

_MOVED = {
    "ByteLevelTokenizerSettings": "adapters.byte_level.settings",
    "ConsoleMetricsSinkSettings": "adapters.console.settings",
    "FilesBlobStoreSettings": "adapters.files.settings",
    "FilesDatasetStoreSettings": "adapters.files.settings",
    "FilesMetricsSinkSettings": "adapters.files.settings",
    "HuggingFaceHubSettings": "adapters.huggingface.settings",
    "HuggingFaceTokenizerSettings": "adapters.hf_tokenizers.settings",
    "LocalTorchModelSettings": "adapters.local_torch.settings",
    "DEFAULT_LORA_TARGETS": "adapters.local_torch.settings",
    "LOCAL_TORCH_ARCHITECTURES": "adapters.local_torch.settings",
    "LOCAL_TORCH_DTYPES": "adapters.local_torch.settings",
    "MemoryVectorStoreSettings": "adapters.memory.settings",
    "MetricsSettings": "container.settings",
    "NeptuneMetricsSinkSettings": "adapters.neptune.settings",
    "NoopSettings": "adapters.noop.settings",
    "OpenAICompatLLMSettings": "adapters.openai_compat.settings",
    "RequestsHttpSettings": "adapters.requests_http.settings",
    "SentenceTransformersEmbeddingSettings": "adapters.sentence_transformers.settings",
    "TiktokenTokenizerSettings": "adapters.tiktoken_format.settings",
    "TinkerSettings": "adapters.tinker.settings",
    "TrainSettings": "recipes.settings",
    "WandbMetricsSinkSettings": "adapters.wandb.settings",
}
"""Settings classes that lived here until 0.2.0 → the module beside their adapter (or
recipe)."""


def __getattr__(name: str) -> Any:
    # Deprecated aliases for 0.2.0 imports; imported by name so that this bottom layer
    # never depends on adapters except when an old import path is actually used.
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"crucible_train.config.{name} moved to crucible_train.{module}; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f"crucible_train.{module}"), name)


# --- introspection ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FieldSpec:
    """What validation needs to know about one settings field.

    Attributes:
        name: the field (and YAML key, and adapter keyword argument) name.
        type: the resolved annotation (``str``, ``int | None``, ``list[str]`` ...).
        required: ``True`` when the field has no default.
        default: the default value, or an ``attrs.Factory`` (``attrs.NOTHING`` when
            required).
        secret_env: the environment variable of a secret field, else ``None``.
        is_path: ``True`` when the value is a filesystem path.
        required_when_selected: ``True`` when ``None`` is accepted in the file but not
            once the backend is selected.
    """

    name: str
    type: Any
    required: bool
    default: Any
    secret_env: str | None
    is_path: bool
    required_when_selected: bool = False

    @property
    def is_secret(self) -> bool:
        """``True`` when the value is a credential."""
        return self.secret_env is not None

    @property
    def accepts_none(self) -> bool:
        """``True`` when ``null`` is a valid value."""
        return _accepts_none(self.type)

    def describe(self) -> str:
        """The expected type in words, e.g. ``"a string or null"``."""
        return _describe(self.type)


_SPECS: dict[type, dict[str, FieldSpec]] = {}  # schemas are immutable classes; cache them


def field_specs(schema: type) -> dict[str, FieldSpec]:
    """The fields of settings schema ``schema``, by name, with resolved annotations.

    Args:
        schema: an attrs class.

    Returns:
        Name to :class:`FieldSpec`, in declaration order.

    Raises:
        TypeError: ``schema`` is not an attrs class, or a field uses an annotation the
            validator does not support (a programming error in the schema).
    """
    cached = _SPECS.get(schema)
    if cached is not None:
        return dict(cached)
    if not attrs.has(schema):
        raise TypeError(f"{schema.__qualname__} is not an attrs class")
    hints = typing.get_type_hints(schema)
    specs: dict[str, FieldSpec] = {}
    for field in attrs.fields(schema):
        annotation = hints.get(field.name, Any)
        _describe(annotation)  # raises TypeError early for unsupported annotations
        default = field.default
        specs[field.name] = FieldSpec(
            name=field.name,
            type=annotation,
            required=default is attrs.NOTHING,
            default=default,
            secret_env=field.metadata.get(SECRET_METADATA_KEY),
            is_path=bool(field.metadata.get(PATH_METADATA_KEY, False)),
            required_when_selected=bool(
                field.metadata.get(REQUIRED_WHEN_SELECTED_METADATA_KEY, False)
            ),
        )
    _SPECS[schema] = specs
    return dict(specs)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _accepts_none(tp: Any) -> bool:
    if tp is Any or tp is type(None) or tp is None:
        return True
    arms = _union_args(tp)
    if arms is not None:
        return any(_accepts_none(arm) for arm in arms)
    if typing.get_origin(tp) is Literal:
        return None in typing.get_args(tp)
    return False


_NOUNS: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("a whole number", "whole numbers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans"),
    type(None): ("null", "nulls"),
    dict: ("a mapping", "mappings"),
}


def _describe(tp: Any, *, plural: bool = False) -> str:
    if tp is Any:
        return "values" if plural else "any value"
    if tp is None:
        tp = type(None)
    if tp in _NOUNS:
        return _NOUNS[tp][1 if plural else 0]
    arms = _union_args(tp)
    if arms is not None:
        # Mention null last: "a string or null" reads better than "null or a string".
        ordered = sorted(arms, key=lambda arm: arm is type(None))
        return " or ".join(_describe(arm, plural=plural) for arm in ordered)
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = ", ".join(repr(choice) for choice in typing.get_args(tp))
        return f"one of {choices}"
    if origin in (dict, Mapping) or tp is Mapping:
        return "mappings" if plural else "a mapping"
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"unsupported settings annotation {tp!r}; use tuple[X, ...]")
        inner = args[0] if args else Any
        return f"a list of {_describe(inner, plural=True)}"
    raise TypeError(f"unsupported settings annotation {tp!r}")


def _check(tp: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits annotation ``tp``, and the value converted to it."""
    if tp is Any:
        return True, value
    if tp is None or tp is type(None):
        return value is None, value
    arms = _union_args(tp)
    if arms is not None:
        for arm in arms:
            ok, converted = _check(arm, value)
            if ok:
                return True, converted
        return False, value
    origin = typing.get_origin(tp)
    if origin is Literal:
        # ``type(...) is`` so that True does not match Literal[1] (True == 1 in Python).
        ok = any(value == choice and type(value) is type(choice) for choice in typing.get_args(tp))
        return ok, value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False, value
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        items = []
        for item in value:
            ok, converted = _check(inner, item)
            if not ok:
                return False, value
            items.append(converted)
        return True, (list(items) if origin is list else tuple(items))
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        # Keys and values are not checked here; the schema's own validators do that.
        return isinstance(value, dict), (dict(value) if isinstance(value, dict) else value)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        # bool is a subclass of int in Python, but ``true`` is not a count.
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported settings annotation {tp!r}")


def _shown(value: Any, *, secret: bool = False) -> str:
    """A value as quoted in a message: its repr (cut short) and type, or only the type."""
    if value is None:
        return "null"
    type_name = type(value).__name__
    if secret:
        return f"a value of type {type_name}"
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return f"{text} ({type_name})"


# --- validation -------------------------------------------------------------------------


def validate_settings(
    schema: type,
    mapping: Any,
    key_path: str,
    *,
    allow_missing: Collection[str] = (),
    unquoted: Collection[str] = (),
) -> tuple[Any | None, list[str]]:
    """Check a settings mapping against ``schema`` and build it when valid.

    Every problem is collected (never only the first), each as one line starting with
    the dotted key it concerns, e.g. ``blob_store.files.root: expected a string, got 3
    (int)``. Checks, in order: unknown keys (with a close-match suggestion), missing
    required keys, value types from the annotations (``bool`` is not accepted as
    ``int``; ``int`` is accepted and converted for ``float``), then the schema's own
    attrs validators. Secret values are never quoted.

    Args:
        schema: an attrs settings class (see :func:`field_specs` for supported types).
        mapping: the parsed YAML sub-block; ``None`` counts as empty.
        key_path: dotted prefix for messages, e.g. ``"blob_store.files"``.
        allow_missing: required fields whose absence is not a problem (the container
            uses it for secrets of backends that are not selected); when one is
            missing no instance is built.
        unquoted: keys whose values must not be quoted in messages, besides secrets
            (the container passes those that came from environment variables).

    Returns:
        ``(instance, [])`` when valid, otherwise ``(None, problems)``; also
        ``(None, [])`` when only ``allow_missing`` fields were missing.
    """
    specs = field_specs(schema)
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        return None, [f"{key_path}: expected a mapping of settings, got {_shown(mapping)}"]

    problems: list[str] = []
    values: dict[str, Any] = {}
    valid_names = sorted(specs)
    for key, value in mapping.items():
        if not isinstance(key, str):
            problems.append(f"{key_path}: setting names must be strings, got {_shown(key)}")
            continue
        spec = specs.get(key)
        if spec is None:
            problems.append(f"{key_path}.{key}: unknown setting{_suggest(key, valid_names)}")
            continue
        ok, converted = _check(spec.type, value)
        if not ok:
            shown = _shown(value, secret=spec.is_secret or key in unquoted)
            problems.append(f"{key_path}.{key}: expected {spec.describe()}, got {shown}")
            continue
        values[key] = converted

    skipped = False
    for spec in specs.values():
        if spec.required and spec.name not in mapping:
            if spec.name in allow_missing:
                skipped = True
            elif spec.is_secret:
                problems.append(
                    f"{key_path}.{spec.name}: missing required secret; "
                    f"set it to ${{{spec.secret_env}}}"
                )
            else:
                problems.append(
                    f"{key_path}.{spec.name}: missing required setting; expected {spec.describe()}"
                )

    if problems or skipped:
        return None, problems
    try:
        instance = schema(**values)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        name, sep, _rest = message.partition(":")
        joiner = "." if sep and name in specs else ": "
        return None, [f"{key_path}{joiner}{message}"]
    return instance, []


def unset_required_fields(schema: type, values: Any, key_path: str) -> list[str]:
    """Problems for :func:`required_when_selected_field` fields left ``None``.

    Call it for a *selected* backend. It works on the raw values too, so a missing
    project is reported together with a missing secret even though no instance can be
    built yet.

    Args:
        schema: the settings schema.
        values: a validated instance, or a mapping of the values given (absent = ``None``).
        key_path: dotted prefix for messages, e.g. ``"metrics.wandb"``.

    Returns:
        One problem per unset field, e.g. ``metrics.wandb.project: must be set when this
        backend is selected; expected a string``.
    """
    problems = []
    for spec in field_specs(schema).values():
        if not spec.required_when_selected:
            continue
        if isinstance(values, Mapping):
            value = values.get(spec.name)
        else:
            value = getattr(values, spec.name, None)
        if value is None:
            arms = [
                arm for arm in (_union_args(spec.type) or (spec.type,)) if arm is not type(None)
            ]
            expected = " or ".join(_describe(arm) for arm in arms) or spec.describe()
            problems.append(
                f"{key_path}.{spec.name}: must be set when this backend is selected; "
                f"expected {expected}"
            )
    return problems


def _suggest(name: str, valid: list[str]) -> str:
    """``"; did you mean 'x'? valid: a, b"`` for an unknown key."""
    matches = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f" (did you mean {matches[0]!r}?)" if matches else ""
    listed = ", ".join(valid) if valid else "none (this backend takes no settings)"
    return f"{hint}; valid: {listed}"


def coerce_env_text(spec: FieldSpec, text: str) -> Any:
    """Convert the text of an environment variable to the type field ``spec`` expects.

    Environment variables are always strings; a leaf that is exactly one ``${NAME}``
    reference is converted here so that ``timeout: ${HUB_TIMEOUT:10}`` yields a float.
    An empty value means ``None`` for a field that accepts ``None``.

    Args:
        spec: the field the value is for.
        text: the variable's value (or the reference's default).

    Returns:
        The converted value (validated afterwards by :func:`validate_settings`).

    Raises:
        ValueError: the text cannot mean the expected type. The message names the
            expected type only: neither the key path nor the text (environment values
            may be secrets).
    """
    tp = spec.type
    if text.strip() == "" and spec.accepts_none:
        return None
    if _check(tp, text)[0] or _accepts_string_literal(tp):
        return text
    stripped = text.strip()
    lowered = stripped.lower()
    if _check(tp, True)[0] and lowered in _BOOL_WORDS:
        return _BOOL_WORDS[lowered]
    if _check(tp, 0)[0]:
        try:
            return int(stripped, 10)
        except ValueError:
            pass
    if _check(tp, 0.5)[0]:
        try:
            return float(stripped)
        except ValueError:
            pass
    raise ValueError(f"expected {spec.describe()}")


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOL_WORDS.update({"false": False, "no": False, "off": False, "0": False})


def _accepts_string_literal(tp: Any) -> bool:
    # Literal["a", "b"] takes a string; keep it as text so the choice check reports it.
    if typing.get_origin(tp) is Literal:
        return any(isinstance(choice, str) for choice in typing.get_args(tp))
    arms = _union_args(tp)
    return arms is not None and any(_accepts_string_literal(arm) for arm in arms)


# --- after validation -------------------------------------------------------------------


def resolve_path_fields(instance: Any, base_dir: str | os.PathLike[str]) -> Any:
    """Make every :func:`path_field` of a settings instance absolute.

    ``~`` is expanded; a relative path is joined to ``base_dir`` (the directory the
    command was started in) and normalised. Nothing on disk is touched.

    Args:
        instance: a validated settings instance.
        base_dir: an absolute directory.

    Returns:
        A new instance (or the same one when nothing changed).
    """
    changes: dict[str, str] = {}
    for spec in field_specs(type(instance)).values():
        value = getattr(instance, spec.name)
        if spec.is_path and isinstance(value, str):
            expanded = os.path.expanduser(value)
            absolute = os.path.normpath(os.path.join(os.fspath(base_dir), expanded))
            if absolute != value:
                changes[spec.name] = absolute
    return attrs.evolve(instance, **changes) if changes else instance


def settings_to_dict(instance: Any) -> dict[str, Any]:
    """A settings instance as a plain mapping of field name to value (secrets included)."""
    return {
        spec.name: _plain_copy(getattr(instance, spec.name))
        for spec in field_specs(type(instance)).values()
    }


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_copy(item) for item in value]
    return value


def redact(
    mapping: Mapping[str, Any],
    schema: type | None = None,
    *,
    secret_keys: Collection[str] = (),
) -> dict[str, Any]:
    """A copy of ``mapping`` safe to display: set secrets become ``"***"``.

    A secret that is unset (``None``) stays ``None`` so the display still shows that it
    is missing. Nested mappings and lists are copied, never shared with the input.

    Args:
        mapping: settings (``schema`` given) or a whole nested configuration.
        schema: a settings schema whose secret fields are top-level keys of ``mapping``.
        secret_keys: dotted paths of further secrets inside ``mapping``, e.g.
            ``"hub.huggingface.token"``.

    Returns:
        The redacted copy.
    """
    paths = {tuple(key.split(".")) for key in secret_keys}
    if schema is not None:
        paths.update((spec.name,) for spec in field_specs(schema).values() if spec.is_secret)
    return _redact(mapping, paths, ())


def _redact(
    mapping: Mapping[str, Any], paths: set[tuple[str, ...]], prefix: tuple[str, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        path = (*prefix, str(key))
        if path in paths and value is not None:
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = _redact(value, paths, path)
        else:
            out[key] = _plain_copy(value)
    return out
