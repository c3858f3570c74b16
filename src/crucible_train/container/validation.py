"""Validating the merged configuration tree: every problem at once, with its key.

Container layer. :class:`Validator` checks the top level, each port block (``backend:``
or, for metrics, ``sinks:``) against the backends the wiring diagram declares, every
backend sub-block against its settings class, and the ``train`` block against the
recipes' config classes. Each problem is one line starting with the dotted key it
concerns and, where there is a choice, the valid names; a missing secret names its
environment variable. Nothing is built here: validation happens before any provider is
called.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from crucible_train.config import (
    FieldSpec,
    coerce_env_text,
    field_specs,
    resolve_path_fields,
    settings_to_dict,
    unset_required_fields,
    validate_settings,
)
from crucible_train.container.backends import HTTP, Backend
from crucible_train.container.settings import MetricsSettings
from crucible_train.container.train_recipes import TRAIN_KEY
from crucible_train.container.yaml_loading import EnvLeaf, from_env, raw_text, unset_message
from crucible_train.core.renderers.registry import list_renderers
from crucible_train.errors import ConfigurationError, MissingSecretError
from crucible_train.recipes.settings import TrainSettings

__all__ = ["METRICS_PORT", "Report", "Validator"]

METRICS_PORT = "metrics"  # the one port configured by a list of sinks instead of `backend:`


@attrs.define
class Report:
    """Problems collected while validating; missing secrets are counted apart."""

    problems: list[str] = attrs.Factory(list)
    missing_secrets: int = 0

    def add(self, problem: str) -> None:
        """Record one problem."""
        self.problems.append(problem)

    def extend(self, problems: Sequence[str]) -> None:
        """Record several problems."""
        self.problems.extend(problems)

    def missing_secret(self, problem: str) -> None:
        """Record an unset secret (a :class:`MissingSecretError` if it is all there is)."""
        self.problems.append(problem)
        self.missing_secrets += 1

    def raise_if_any(self) -> None:
        """Raise every recorded problem in one error; do nothing when there are none."""
        if not self.problems:
            return
        if self.missing_secrets == len(self.problems):
            raise MissingSecretError(*self.problems)
        raise ConfigurationError(*self.problems)


def _plain(value: Any, path: str, report: Report) -> Any:
    """Resolve :class:`EnvLeaf` values anywhere in ``value`` to their text."""
    if isinstance(value, EnvLeaf):
        if value.text is None:
            report.add(unset_message(path, value))
        return value.text
    if isinstance(value, dict):
        return {key: _plain(item, f"{path}.{key}", report) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, f"{path}[{index}]", report) for index, item in enumerate(value)]
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _valid_list(names: Sequence[str]) -> str:
    return ", ".join(sorted(names))


def _suggestion(name: object, names: Sequence[str]) -> str:
    if not isinstance(name, str):
        return ""
    matches = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


@attrs.define
class Validator:
    """Validates the merged, interpolated tree; every problem goes to ``report``.

    Attributes:
        backends: port key → backend name → :class:`Backend`, as the wiring diagram
            declares them (``metrics``: the sinks), in :data:`~crucible_train.ports.PORTS` order.
        recipes: recipe name → its config class (the schema of ``train.<recipe>``).
        environ: environment for secrets (interpolation already happened).
        base_dir: directory relative paths are resolved against.
        report: where problems are collected.
        secret_keys: dotted keys of every secret field seen, for redaction.
    """

    backends: Mapping[str, Mapping[str, Backend]]
    recipes: Mapping[str, type]
    environ: Mapping[str, str]
    base_dir: Path
    report: Report = attrs.Factory(Report)
    secret_keys: set[str] = attrs.Factory(set)

    def tree(self, tree: dict[Any, Any]) -> dict[str, Any]:
        """Check the top level, then each port block; return the resolved config."""
        ports = list(self.backends)
        top = [*ports, TRAIN_KEY]
        for key in tree:
            if key not in top:
                self.report.add(
                    f"{key}: unknown top-level key{_suggestion(key, top)}; "
                    f"valid: {_valid_list(top)}"
                )
        resolved: dict[str, Any] = {}
        for port in ports:
            selector = "sinks: [...]" if port == METRICS_PORT else "backend: ..."
            if port not in tree:
                self.report.add(f"{port}: missing port block; add `{port}:` with `{selector}`")
                continue
            block = tree[port]
            if not isinstance(block, dict):
                self.report.add(
                    f"{port}: expected a mapping with `{selector}`, got {_shown(raw_text(block))}"
                )
                continue
            resolved[port] = self.metrics(block) if port == METRICS_PORT else self.port(port, block)
        self.http_users_have_http(resolved)
        if TRAIN_KEY in tree:
            resolved[TRAIN_KEY] = self.train(tree[TRAIN_KEY])
        return resolved

    def train(self, block: Any) -> dict[str, Any]:
        """The ``train`` block: shared settings, then one sub-block per recipe.

        Each recipe's keys are the fields of its config class; a recipe whose module is
        not installed is kept as written.
        """
        if block is None:
            block = {}
        if not isinstance(block, dict):
            self.report.add(f"{TRAIN_KEY}: expected a mapping, got {_shown(raw_text(block))}")
            return {}
        own_keys = list(field_specs(TrainSettings))
        own = {key: block[key] for key in own_keys if key in block}
        resolved: dict[str, Any] = (
            self.validate_block(TrainSettings, TRAIN_KEY, own, selected=True) or {}
        )
        renderer = resolved.get("renderer")
        if isinstance(renderer, str):
            names = list_renderers()
            if renderer.lower() not in names:
                self.report.add(
                    f"{TRAIN_KEY}.renderer: unknown renderer {renderer!r}"
                    f"{_suggestion(renderer, names)}; valid: {', '.join(names)}"
                )
        keys = [*own_keys, *self.recipes]
        for key in block:
            if key not in keys:
                self.report.add(
                    f"{TRAIN_KEY}.{key}: unknown key{_suggestion(key, keys)}; "
                    f"valid: {', '.join(keys)}"
                )
        for name, schema in self.recipes.items():
            raw = block.get(name)
            settings = self.validate_block(schema, f"{TRAIN_KEY}.{name}", raw, selected=True)
            if settings is not None:
                resolved[name] = settings
        return resolved

    def http_users_have_http(self, resolved: dict[str, Any]) -> None:
        """A selected adapter that talks HTTP (any port) needs a real ``http.backend``."""
        http = resolved.get(HTTP, {}).get("backend")
        if http != "noop":
            return  # a real client, or an invalid backend that is reported already
        for port, block in resolved.items():
            backends = self.backends[port]
            if port == METRICS_PORT:
                for index, name in enumerate(block.get("sinks", [])):
                    if backends[name].talks_http:
                        self.report.add(
                            f"{port}.sinks[{index}]: sink {name!r} sends its data over HTTP, "
                            "but http.backend is 'noop'; set http.backend: requests"
                        )
                continue
            name = block.get("backend")
            if name is not None and backends[name].talks_http:
                self.report.add(
                    f"{port}.backend: backend {name!r} sends its requests over HTTP, "
                    "but http.backend is 'noop'; set http.backend: requests"
                )

    def port(self, port: str, block: dict[Any, Any]) -> dict[str, Any]:
        """A port chosen by ``backend:``: check the name, then the sub-blocks."""
        backends = self.backends[port]
        valid = _valid_list(list(backends))
        chosen: list[str] = []
        if "backend" not in block:
            self.report.add(f"{port}.backend: missing; valid: {valid}")
        else:
            count = len(self.report.problems)
            name = _plain(block["backend"], f"{port}.backend", self.report)
            if len(self.report.problems) > count:
                pass  # an unset environment variable, already reported
            elif not isinstance(name, str):
                self.report.add(
                    f"{port}.backend: expected a backend name, got {_shown(name)}; valid: {valid}"
                )
            elif name not in backends:
                self.report.add(f"{port}.backend: unknown backend {name!r}; valid: {valid}")
            else:
                chosen.append(name)
        blocks = self.sub_blocks(port, block, selected=chosen, reserved=("backend",))
        return {"backend": chosen[0] if chosen else None, **blocks}

    def metrics(self, block: dict[Any, Any]) -> dict[str, Any]:
        """The metrics port, chosen by a list of sinks: check the list, then the sub-blocks."""
        port = METRICS_PORT
        backends = self.backends[port]
        valid = _valid_list(list(backends))
        sinks: list[str] = []
        if "sinks" not in block:
            self.report.add(
                f"{port}.sinks: missing; list the sinks to log to, e.g. [noop]; valid: {valid}"
            )
        else:
            count = len(self.report.problems)
            raw = _plain(block["sinks"], f"{port}.sinks", self.report)
            if len(self.report.problems) > count:
                pass  # an unset environment variable, already reported
            elif not isinstance(raw, list):
                self.report.add(
                    f"{port}.sinks: expected a list of sink names such as [noop], "
                    f"got {_shown(raw)}; valid: {valid}"
                )
            elif not raw:
                self.report.add(
                    f"{port}.sinks: is empty; list at least one sink (noop logs nothing)"
                )
            names = raw if isinstance(raw, list) and len(self.report.problems) == count else []
            for index, name in enumerate(names):
                where = f"{port}.sinks[{index}]"
                if not isinstance(name, str):
                    self.report.add(f"{where}: expected a sink name, got {_shown(name)}")
                elif name not in backends:
                    self.report.add(f"{where}: unknown sink {name!r}; valid: {valid}")
                elif name in sinks:
                    self.report.add(f"{where}: sink {name!r} is listed twice; list each sink once")
                else:
                    sinks.append(name)
        if "backend" in block:
            # The most likely slip: configuring metrics like every other port.
            self.report.add(
                f"{port}.backend: metrics has no single backend; "
                "list sink names instead, e.g. sinks: [noop]"
            )
            block = {key: value for key, value in block.items() if key != "backend"}
        own = {key: block[key] for key in field_specs(MetricsSettings) if key in block}
        settings = self.validate_block(MetricsSettings, port, own, selected=True) or {}
        reserved = ("sinks", *field_specs(MetricsSettings))
        return {
            "sinks": sinks,
            **settings,
            **self.sub_blocks(port, block, selected=sinks, reserved=reserved),
        }

    def sub_blocks(
        self, port: str, block: dict[Any, Any], *, selected: list[str], reserved: Sequence[str]
    ) -> dict[str, Any]:
        """Validate every backend sub-block present (and the selected ones even if absent).

        Returns the resolved settings of the selected backends only, in ``selected`` order.
        """
        backends = self.backends[port]
        keys = [*reserved, *sorted(backends)]
        resolved: dict[str, Any] = {}
        for key, raw in block.items():
            if key in reserved:
                continue
            if key not in backends:
                self.report.add(
                    f"{port}.{key}: unknown key{_suggestion(key, keys)}; valid: {', '.join(keys)}"
                )
                continue
            resolved[key] = self.settings(port, key, raw, selected=key in selected)
        # A selected backend without a sub-block takes all its defaults.
        return {
            name: resolved[name] if name in block else self.settings(port, name, {}, selected=True)
            for name in selected
        }

    def settings(self, port: str, name: str, raw: Any, *, selected: bool) -> dict[str, Any] | None:
        """Validate one backend's settings sub-block; return its resolved settings.

        Secrets are resolved from the environment; a required one that is unset is a
        problem only when the backend is selected. Whole ``${NAME}`` leaves are
        converted to the field's type. Paths are made absolute.
        """
        backend = self.backends[port][name]
        return self.validate_block(backend.settings, f"{port}.{name}", raw, selected=selected)

    def validate_block(
        self, schema: type, key_path: str, raw: Any, *, selected: bool
    ) -> dict[str, Any] | None:
        """Validate one settings mapping against ``schema``; return its resolved settings."""
        if raw is None:
            raw = {}  # `noop:` with nothing after it means "no settings"
        if not isinstance(raw, dict):
            self.report.add(
                f"{key_path}: expected a mapping of settings, got {_shown(raw_text(raw))}"
            )
            return None
        specs = field_specs(schema)
        values: dict[str, Any] = {}
        # Fields already reported (or, for unselected backends, secrets not needed): leave
        # them out and do not let validate_settings call them missing a second time.
        failed: set[str] = set()
        before = len(self.report.problems)
        for spec in specs.values():
            if spec.is_secret:
                self.secret_keys.add(f"{key_path}.{spec.name}")
                usable, secret = self.secret(
                    spec, raw.get(spec.name), f"{key_path}.{spec.name}", selected=selected
                )
                if usable:
                    values[spec.name] = secret
                else:
                    failed.add(spec.name)
        for key, value in raw.items():
            known = specs.get(key) if isinstance(key, str) else None
            path = f"{key_path}.{key}"
            if known is None:
                values[key] = raw_text(value)  # validate_settings reports the unknown key
            elif known.is_secret:
                continue
            elif isinstance(value, EnvLeaf) and value.whole and value.text is not None:
                try:
                    values[key] = coerce_env_text(known, value.text)
                except ValueError as exc:
                    # The value itself is not shown: environment variables may hold secrets.
                    self.report.add(
                        f"{path}: {exc}, but {value.raw!r} gives a value that is not one"
                    )
                    failed.add(key)
            else:
                count = len(self.report.problems)
                values[key] = _plain(value, path, self.report)
                if len(self.report.problems) > count:
                    failed.add(key)
                    del values[key]
        instance, problems = validate_settings(
            schema,
            values,
            key_path,
            allow_missing=failed,
            unquoted={key for key, value in raw.items() if from_env(value)},
        )
        self.report.extend(problems)
        if selected:
            # Checked on the given values so that it is reported even when a missing
            # secret kept the instance from being built.
            given = {k: v for k, v in values.items() if k not in failed}
            self.report.extend(unset_required_fields(schema, given, key_path))
        if instance is None or len(self.report.problems) > before:
            return None
        return settings_to_dict(resolve_path_fields(instance, self.base_dir))

    def secret(
        self, spec: FieldSpec, value: Any, path: str, *, selected: bool
    ) -> tuple[bool, str | None]:
        """Resolve a secret field. Returns (usable, value); problems are reported.

        ``value`` is what the file holds: absent/``None`` (read the field's conventional
        variable) or a whole ``${NAME}`` / ``${NAME:}`` reference. Anything else is a
        literal secret and refused, without quoting it.
        """
        how = f"write `{spec.name}: ${{{spec.secret_env}:}}` and export {spec.secret_env}"
        if value is None:
            variable = spec.secret_env or ""
        elif isinstance(value, EnvLeaf) and value.whole:
            variable = value.variables[0]
            if value.default:
                self.report.add(
                    f"{path}: a secret's ${{{variable}:...}} default must be empty; {how}"
                )
                return False, None
        else:
            self.report.add(f"{path}: secrets must come from environment variables; {how}")
            return False, None
        text = self.environ.get(variable)
        if text is not None and text.strip():
            return True, text
        if not spec.required:
            return True, None  # an optional secret is simply absent
        if selected:
            state = "is not set" if text is None else "is set but empty"
            self.report.missing_secret(f"{path}: environment variable {variable} {state}")
        return False, None
