"""Logging facade: build a metrics sink by kind, without ``containers.yaml``.

Entry-point layer next to :mod:`crucible_train.container`, for scripts and notebooks that
want tinker-cookbook's ``ml_log`` convenience::

    from crucible_train.entrypoints.logger_facade import create_logger, dump_config

    logger = create_logger("multiplex", kinds=["json", "pretty", "wandb"],
                           log_dir="runs/exp1", project="my-project")
    logger.log_hparams(config)   # multiplex dumps it JSON-safe and masks the API key
    logger.log_metrics({"loss": 0.25}, step=0)
    logger.close()

Kinds (each maps to a metrics backend registered in ``container.BACKENDS``; adapter
classes are never imported here):

* ``json`` → the ``files`` sink; ``log_dir`` (required) is its run directory;
* ``pretty`` → the ``console`` sink; ``every``, ``width``, ``console``;
* ``wandb`` → the W&B sink; ``api_key`` (default ``$WANDB_API_KEY``), ``project``
  (required), ``entity``, ``run_name``, ``run_id``, ``base_url``, ``app_url`` and the
  delivery knobs of its settings schema, ``log_dir`` (required: its spool directory),
  ``http`` (an :class:`~crucible_train.ports.HttpClient`; default: a new ``requests``
  client that is closed with the logger);
* ``neptune`` → the Neptune sink; ``api_token`` (default ``$NEPTUNE_API_TOKEN``),
  ``project`` (``workspace/project``, required), ``run_name``, ``api_url``, delivery
  knobs, ``log_dir``, ``http``;
* ``multiplex`` → :class:`~crucible_train.core.metrics_fanout.MultiplexMetricsSink` over
  ``loggers=[sink, ...]`` (given sinks, first) and ``kinds=[...]`` (built here, after
  them). Other options are shared: each kind takes those it understands (an option no
  listed kind understands is an error); an option named after a kind holds settings
  for that kind only, e.g. ``neptune={"project": "ws/proj"}``. One HTTP client is
  shared by all kinds that need one.

Option values are validated with the same schemas as ``containers.yaml``; every problem
is reported in one :class:`~crucible_train.errors.ConfigurationError`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train import container
from crucible_train.config import field_specs, unset_required_fields, validate_settings
from crucible_train.core.config_dump import dump_config
from crucible_train.core.metrics_fanout import MultiplexMetricsSink
from crucible_train.errors import ConfigurationError, MissingSecretError
from crucible_train.ports.http import HttpClient
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = ["KINDS", "create_logger", "dump_config"]

KINDS: dict[str, str | None] = {
    "json": "files",
    "pretty": "console",
    "wandb": "wandb",
    "neptune": "neptune",
    "multiplex": None,
}
"""Logger kind → the ``metrics`` backend it builds (``None``: the multiplexer)."""

_LOG_DIR = "log_dir"  # the facade's name for a sink's run_dir (tinker's name)
_HTTP = "http"
_HTTP_BACKEND = "requests"


def _valid_kinds() -> str:
    return ", ".join(sorted(KINDS))


def _backend(kind: str) -> container.Backend:
    name = KINDS[kind]
    backend = container.BACKENDS["metrics"].get(name or "")
    if backend is None:
        raise ConfigurationError(
            f"logger kind {kind!r} needs the metrics backend {name!r}, which this "
            "installation does not register"
        )
    return backend


def _parameters(adapter: type) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(adapter).parameters


def _options(kind: str) -> list[str]:
    """The options ``create_logger(kind, ...)`` accepts, in a stable order."""
    backend = _backend(kind)
    parameters = _parameters(backend.adapter)
    names = list(field_specs(backend.settings))
    if "run_dir" in parameters:
        names.append(_LOG_DIR)
    if _HTTP in parameters:
        names.append(_HTTP)
    # Optional code-only arguments (the console's rich Console) are options too.
    names += [
        name
        for name, parameter in parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and parameter.default is not inspect.Parameter.empty
        and name not in names
        and name not in container.INJECTED_ARGUMENTS
    ]
    return names


class _ClosesResources(MetricsSink):
    """Forwards every call to ``sink``; closes resources made for it after ``sink`` closes.

    Args:
        sink: the sink the caller uses.
        resources: objects with ``close()`` (an HTTP client created by the facade).
    """

    def __init__(self, *, sink: MetricsSink, resources: Sequence[HttpClient]) -> None:
        self._sink = sink
        self._resources = tuple(resources)

    @property
    def sink(self) -> MetricsSink:
        """The wrapped sink."""
        return self._sink

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Forward to the wrapped sink."""
        self._sink.log_hparams(config)

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Forward to the wrapped sink."""
        self._sink.log_metrics(metrics, step)

    def log_long_text(self, key: str, text: str) -> None:
        """Forward to the wrapped sink."""
        self._sink.log_long_text(key, text)

    def sync(self) -> None:
        """Forward to the wrapped sink."""
        self._sink.sync()

    def get_url(self) -> str | None:
        """Forward to the wrapped sink."""
        return self._sink.get_url()

    def close(self, exit_code: int = 0) -> None:
        """Close the sink first (it may still flush over HTTP), then the resources."""
        try:
            self._sink.close(exit_code)
        finally:
            for resource in self._resources:
                resource.close()


def _new_http() -> HttpClient:
    backend = container.BACKENDS["http"].get(_HTTP_BACKEND)
    if backend is None:  # pragma: no cover - requests is a required dependency
        raise ConfigurationError("the 'requests' HTTP backend is not registered")
    client: HttpClient = backend.adapter()
    return client


def _settings(kind: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the settings part of ``opts`` for ``kind``; raise with every problem."""
    backend = _backend(kind)
    specs = field_specs(backend.settings)
    values = {name: value for name, value in opts.items() if name in specs}
    missing_secrets: list[str] = []
    for spec in specs.values():
        if not spec.is_secret:
            continue
        given = values.get(spec.name)
        if given is None or (isinstance(given, str) and not given.strip()):
            from_env = os.environ.get(spec.secret_env or "", "").strip()
            if from_env:
                values[spec.name] = from_env
            elif spec.required:
                missing_secrets.append(
                    f"{kind}.{spec.name}: not given, and environment variable "
                    f"{spec.secret_env} is not set"
                )
                values.pop(spec.name, None)
            else:
                values[spec.name] = None
    instance, problems = validate_settings(
        backend.settings,
        values,
        kind,
        allow_missing={s.name for s in specs.values() if s.is_secret},
    )
    problems += unset_required_fields(backend.settings, values, kind)
    if missing_secrets and not problems:
        raise MissingSecretError(*missing_secrets)
    if missing_secrets or problems:
        raise ConfigurationError(*missing_secrets, *problems)
    if instance is None:  # pragma: no cover - every reason is reported above
        raise ConfigurationError(f"{kind}: invalid settings")
    return {spec: getattr(instance, spec) for spec in specs}


def _secret_values(kind: str, opts: Mapping[str, Any]) -> list[str]:
    """The secrets ``kind`` was built with (given or from the environment), for redaction."""
    values = []
    for spec in field_specs(_backend(kind).settings).values():
        if spec.is_secret:
            value = opts.get(spec.name) or os.environ.get(spec.secret_env or "", "")
            if isinstance(value, str) and value.strip():
                values.append(value.strip())
    return values


def _check_names(kind: str, opts: Mapping[str, Any]) -> None:
    valid = _options(kind)
    unknown = [name for name in opts if name not in valid]
    if unknown:
        raise ConfigurationError(
            *(
                f"create_logger({kind!r}): unknown option {name!r}; valid: {', '.join(valid)}"
                for name in unknown
            )
        )


def _build(kind: str, opts: Mapping[str, Any], http: HttpClient | None) -> MetricsSink:
    """Build one non-multiplex sink; ``http`` is used when the sink needs one."""
    _check_names(kind, opts)
    backend = _backend(kind)
    parameters = _parameters(backend.adapter)
    kwargs = _settings(kind, opts)
    extras = set(_options(kind)) - set(kwargs) - {_LOG_DIR, _HTTP}
    kwargs.update({name: opts[name] for name in extras if name in opts})
    if "run_dir" in parameters:
        log_dir = opts.get(_LOG_DIR)
        if log_dir is None or (isinstance(log_dir, str) and not log_dir.strip()):
            raise ConfigurationError(
                f"create_logger({kind!r}) needs log_dir, the run directory to write to"
            )
        try:
            path = os.fspath(log_dir)
        except TypeError:
            raise ConfigurationError(
                f"create_logger({kind!r}): log_dir must be a path, got {type(log_dir).__name__}"
            ) from None
        # Relative paths mean "from where the program was started", as in containers.yaml.
        kwargs["run_dir"] = os.path.abspath(os.path.expanduser(path))
    if _HTTP in parameters:
        if http is None:  # pragma: no cover - create_logger always provides one
            raise ConfigurationError(f"create_logger({kind!r}) needs an HTTP client")
        kwargs[_HTTP] = http
    sink: MetricsSink = backend.adapter(**kwargs)
    return sink


def _needs_http(kind: str) -> bool:
    return _HTTP in _parameters(_backend(kind).adapter)


def _given_http(kind: str, value: Any) -> HttpClient:
    if not isinstance(value, HttpClient):
        raise ConfigurationError(
            f"create_logger({kind!r}): http must be an HttpClient, got {type(value).__name__}"
        )
    return value


def create_logger(kind: str, **opts: Any) -> MetricsSink:
    """Build a metrics sink of ``kind`` (see the module docstring for kinds and options).

    Args:
        kind: ``json``, ``pretty``, ``wandb``, ``neptune`` or ``multiplex``.
        **opts: the kind's options.

    Returns:
        A ready sink; ``close()`` it at the end of the run (with a non-zero exit code
        when the run failed). When the facade created an HTTP client for it, closing
        the sink also closes that client.

    Raises:
        MissingSecretError: only secrets are missing (the message names the variable).
        ConfigurationError: unknown kind (the valid ones are listed), unknown option,
            missing ``log_dir`` or ``project``, or an invalid value.
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigurationError(f"unknown logger kind {kind!r}; valid: {_valid_kinds()}")
    if kind == "multiplex":
        return _multiplex(opts)
    owned: list[HttpClient] = []
    http: HttpClient | None = None
    if _needs_http(kind):
        if opts.get(_HTTP) is not None:
            http = _given_http(kind, opts[_HTTP])
        else:
            http = _new_http()
            owned.append(http)
    try:
        sink = _build(kind, {k: v for k, v in opts.items() if k != _HTTP}, http)
    except BaseException:
        for resource in owned:
            resource.close()
        raise
    return _ClosesResources(sink=sink, resources=owned) if owned else sink


def _multiplex(opts: Mapping[str, Any]) -> MetricsSink:
    loggers = list(opts.get("loggers") or [])
    kinds = list(opts.get("kinds") or [])
    problems: list[str] = []
    for index, logger in enumerate(loggers):
        if not isinstance(logger, MetricsSink):
            problems.append(
                f"create_logger('multiplex'): loggers[{index}] is a {type(logger).__name__}, "
                "not a MetricsSink"
            )
    for index, name in enumerate(kinds):
        if name not in KINDS or name == "multiplex":
            valid = ", ".join(k for k in sorted(KINDS) if k != "multiplex")
            problems.append(
                f"create_logger('multiplex'): kinds[{index}] is {name!r}; valid: {valid}"
            )
    if len(set(kinds)) != len(kinds):
        problems.append("create_logger('multiplex'): list each kind once")
    if not loggers and not kinds:
        problems.append("create_logger('multiplex') needs loggers=[...] and/or kinds=[...]")
    if problems:
        raise ConfigurationError(*problems)

    shared = {k: v for k, v in opts.items() if k not in ("loggers", "kinds", *KINDS)}
    per_kind = {k: opts[k] for k in KINDS if k in opts}
    understood = {name for kind in kinds for name in _options(kind)}
    unknown = [name for name in shared if name not in understood]
    stray = [name for name in per_kind if name not in kinds]
    if unknown or stray:
        raise ConfigurationError(
            *(
                f"create_logger('multiplex'): option {name!r} is not used by any of kinds={kinds}"
                for name in [*unknown, *stray]
            )
        )

    owned: list[HttpClient] = []
    http: HttpClient | None = None
    if any(_needs_http(kind) for kind in kinds):
        given = shared.get(_HTTP)
        if given is not None:
            http = _given_http("multiplex", given)
        else:
            http = _new_http()
            owned.append(http)
    built: list[MetricsSink] = []
    try:
        for kind in kinds:
            options = {k: v for k, v in shared.items() if k in _options(kind) and k != _HTTP}
            specific = per_kind.get(kind) or {}
            if not isinstance(specific, Mapping):
                raise ConfigurationError(
                    f"create_logger('multiplex'): {kind}= must be a mapping of options"
                )
            options.update({k: v for k, v in specific.items() if k != _HTTP})
            built.append(_build(kind, options, http))
    except BaseException:
        # Close what was already started (a W&B run would otherwise stay "running").
        for sink in built:
            with contextlib.suppress(Exception):  # the original error matters more
                sink.close(1)
        for resource in owned:
            resource.close()
        raise
    secrets = [
        value
        for kind in kinds
        for value in _secret_values(kind, {**shared, **(per_kind.get(kind) or {})})
    ]
    multiplexer = MultiplexMetricsSink(sinks=[*loggers, *built], secrets=secrets)
    return _ClosesResources(sink=multiplexer, resources=owned) if owned else multiplexer
