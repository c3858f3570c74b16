"""Weights & Biases metrics sink (adapter layer): checks what is logged and spools it.

:class:`WandbMetricsSink` validates every call on the caller's thread and hands the row to a
:class:`~crucible_train.adapters.delivery.sender.ReliableSender`: logging calls only queue a
row, a background thread spools it to ``RUN_DIR/spool/wandb/`` and sends it under a token
bucket through :class:`~crucible_train.adapters.wandb.transport.WandbTransport` (the wire
protocol, over our :class:`~crucible_train.ports.http.HttpClient`; the ``wandb`` package is
never used), and nothing is lost when W&B is down (``crucible-train logs sync RUN_DIR``
delivers what a dead process left behind). The run's identity lives in the spool's
``sink.json``, so the same run directory resumes the same run.

The API key comes from ``WANDB_API_KEY``; it never appears in logs, errors, reprs or files.

Values: numbers (``bool``, ``int``, ``float``, numpy scalars) and strings; anything else
is refused with :class:`~crucible_train.errors.MetricsSinkError` on the caller's thread.
NaN and infinities are accepted; the transport sends them as wandb 0.31.0 does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlsplit

from crucible_train.adapters._metrics_input import (
    check_hparams,
    check_metrics,
    check_open,
    check_step,
)
from crucible_train.adapters.delivery.constants import SINK_FILE
from crucible_train.adapters.delivery.encoding import json_safe
from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.spool import (
    read_sink_info,
    reset_spool,
    spool_dir_for,
    spool_status,
    write_sink_info,
)
from crucible_train.adapters.delivery.sync import SpoolingSink
from crucible_train.adapters.wandb.transport import API_KEY_ENV, WandbTransport, api_to_app_url
from crucible_train.errors import (
    ConfigurationError,
    MetricsSinkError,
    MissingSecretError,
)
from crucible_train.ports.http import HttpClient
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "SINK_KIND",
    "WandbMetricsSink",
    "WandbTransport",
    "api_to_app_url",
    "generate_run_id",
]

SINK_KIND: Final = "wandb"
"""The sink's backend name, and its spool directory under ``RUN_DIR/spool/``."""
DEFAULT_BASE_URL: Final = "https://api.wandb.ai"
"""The W&B cloud API (wandb 0.31 defaults to the CoreWeave Forge proxy of the same API)."""

_RUN_ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_RUN_ID_LENGTH: Final = 8
_FORBIDDEN_NAME_CHARS: Final = frozenset("/\\#?%:")  # W&B refuses these in ids and names
_RESERVED_KEYS: Final = frozenset({"_step", "_runtime", "_timestamp", "_wandb"})
_SINK: Final = "W&B sink"  # how messages name this sink
_VALUE_ADVICE: Final = "W&B history takes numbers (NaN and infinities included) and strings"

# --- names and ids --------------------------------------------------------------------


def _url_part(text: str) -> str:
    return quote(text, safe="=+&$@")


def generate_run_id(rng: random.Random | None = None) -> str:
    """A new run id as the SDK makes them: 8 characters from ``[a-z0-9]``."""
    source = rng if rng is not None else random.SystemRandom()
    return "".join(source.choice(_RUN_ID_ALPHABET) for _ in range(_RUN_ID_LENGTH))


# --- the sink -------------------------------------------------------------------------


def _check_key(key: object, what: str) -> None:
    if type(key) is not str:
        raise MetricsSinkError(f"{what} name {key!r} is a {type(key).__name__}; use a string")
    if not key:
        raise MetricsSinkError(f"{what} name is empty")
    if key[0] == "_" and key in _RESERVED_KEYS:
        raise MetricsSinkError(f"{what} name {key!r} is reserved by W&B; choose another")


def _check_optional_name(value: object, what: str) -> str | None:
    return None if value is None else _check_name(value, what)


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"wandb {what} must be a non-empty string, got {value!r}")
    bad = sorted(set(value) & _FORBIDDEN_NAME_CHARS)
    if bad or any(ch.isspace() for ch in value) or len(value) > 128:
        raise ConfigurationError(
            f"wandb {what} {value!r} is not valid: use at most 128 characters, no spaces "
            f"and none of {''.join(sorted(_FORBIDDEN_NAME_CHARS))}"
        )
    return value


def _check_url(value: object, what: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise ConfigurationError(f"wandb {what} must be an http:// or https:// URL, got {value!r}")
    if not urlsplit(value).hostname:
        raise ConfigurationError(f"wandb {what} {value!r} has no host")
    return value.rstrip("/")


def _api_key(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MissingSecretError(
            f"the W&B sink needs an API key: export {API_KEY_ENV} (find your key at "
            "https://wandb.ai/authorize, or your server's /authorize page)"
        )
    key = value.strip()
    if any(ch.isspace() or ord(ch) < 32 for ch in key):
        raise ConfigurationError(f"{API_KEY_ENV} contains whitespace; paste the key alone")
    return key


class WandbMetricsSink(MetricsSink, SpoolingSink):
    """Logs a run to Weights & Biases over HTTP, spooling every row before sending it.

    ``log_*`` calls validate on the caller's thread (cheaply) and queue the row; they
    never wait for the network. ``sync`` waits until everything is on disk; ``close``
    delivers for up to ``close_timeout_s`` seconds, marks the run finished (exit code 0)
    or failed, and logs how to deliver what is left (``crucible-train logs sync
    RUN_DIR``). Calls come from one thread at a time.

    The same ``run_dir`` resumes the same run: the run's identity lives in
    ``RUN_DIR/spool/wandb/sink.json`` and its offsets in ``state.json`` (no secrets).

    Args:
        http: the HTTP client (the container's ``http`` port).
        run_dir: the run's directory; the spool goes to ``RUN_DIR/spool/wandb/``.
        api_key: the W&B API key (from ``WANDB_API_KEY``).
        project: the W&B project.
        entity: the user or team; ``None`` uses the key's default entity.
        run_name: the display name; ``None`` lets W&B pick one.
        run_id: the run id; ``None`` resumes the run this ``run_dir`` logged to before, or
            makes a new 8-character id. An id that exists on W&B is resumed there.
        base_url: the API base URL (self-hosted: your server's address).
        app_url: the UI base URL for :meth:`get_url`; ``None`` derives it from
            ``base_url`` like wandb 0.31 (``https://api.wandb.ai`` →
            ``https://forge.coreweave.com/wandb``; older SDKs used ``https://wandb.ai``).
        rate_per_s: sustained file_stream requests per second (rows are batched).
        burst: requests allowed back to back.
        heartbeat_s: idle seconds before a heartbeat (the SDK's 30 s).
        close_timeout_s: seconds ``close`` may spend delivering.
        min_backoff_s: first retry delay (the SDK's 2 s).
        max_backoff_s: longest retry delay (the SDK's 60 s).
        request_timeout_s: seconds per GraphQL request; file_stream requests get twice that.

    Raises:
        MissingSecretError: ``api_key`` is missing or empty.
        ConfigurationError: a setting is invalid, or ``run_dir`` holds undelivered rows of
            another run, or another process is using its spool.
    """

    SINK_KIND: ClassVar[str] = SINK_KIND

    def __init__(
        self,
        *,
        http: HttpClient,
        run_dir: str,
        api_key: str,
        project: str,
        entity: str | None = None,
        run_name: str | None = None,
        run_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        app_url: str | None = None,
        rate_per_s: float = 0.5,
        burst: int = 4,
        heartbeat_s: float = 30.0,
        close_timeout_s: float = 30.0,
        min_backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
        request_timeout_s: float = 30.0,
    ) -> None:
        key = _api_key(api_key)
        project_name = _check_name(project, "project")
        entity = _check_optional_name(entity, "entity")
        run_id = _check_optional_name(run_id, "run_id")
        if run_name is not None and (not isinstance(run_name, str) or not run_name.strip()):
            raise ConfigurationError("wandb run_name must be a non-empty string or null")
        base = _check_url(base_url, "base_url")
        self._app_url = api_to_app_url(base) if app_url is None else _check_url(app_url, "app_url")
        if not isinstance(close_timeout_s, int | float) or not close_timeout_s >= 0:
            raise ConfigurationError(f"wandb close_timeout_s is {close_timeout_s!r}; use >= 0")
        if not isinstance(run_dir, str | Path) or not str(run_dir):
            raise ConfigurationError(f"wandb run_dir must be a directory path, got {run_dir!r}")
        self._run_dir = Path(run_dir)
        self._spool_dir = spool_dir_for(self._run_dir, SINK_KIND)
        identity = self._identity(
            project=project_name, entity=entity, run_id=run_id, run_name=run_name, base=base
        )
        self._project = project_name
        self._entity = entity
        self._run_id = str(identity["run_id"])
        self._base_url = base
        self._close_timeout = float(close_timeout_s)
        self._closed = False
        transport = WandbTransport(
            http=http,
            api_key=key,
            base_url=base,
            project=project_name,
            entity=entity,
            run_id=self._run_id,
            display_name=run_name,
            created_at=float(identity["created_at"]),
            request_timeout_s=request_timeout_s,
            # file_stream bodies are bigger than GraphQL ones (the SDK allows 180 s vs 30 s).
            file_stream_timeout_s=2 * request_timeout_s,
        )
        self._sender = ReliableSender(
            transport=transport,
            spool_dir=self._spool_dir,
            rate_per_s=rate_per_s,
            burst=burst,
            heartbeat_s=heartbeat_s,
            min_backoff_s=min_backoff_s,
            max_backoff_s=max_backoff_s,
            name="W&B",
        )

    def _identity(
        self,
        *,
        project: str,
        entity: str | None,
        run_id: str | None,
        run_name: str | None,
        base: str,
    ) -> dict[str, Any]:
        """The run this directory logs to: the one it logged to before, or a new one."""
        spool = self._spool_dir
        if (spool / SINK_FILE).is_file():
            known = read_sink_info(spool)
            same = (
                known.get("project") == project
                and known.get("base_url") == base
                and (run_id is None or run_id == known.get("run_id"))
                and (entity is None or entity == known.get("entity"))
                and isinstance(known.get("run_id"), str)
                and isinstance(known.get("created_at"), int | float)
            )
            if same:
                return known
            if spool_status(spool).pending:
                raise ConfigurationError(
                    f"{self._run_dir} holds undelivered rows of W&B run "
                    f"{known.get('entity') or '<default entity>'}/{known.get('project')}/"
                    f"{known.get('run_id')}, not of the run configured now; run "
                    f"`crucible-train logs sync {self._run_dir}` first, or use another run_dir"
                )
            reset_spool(spool)
        identity: dict[str, Any] = {
            "run_id": run_id or generate_run_id(),
            "project": project,
            "entity": entity,
            "run_name": run_name,
            "base_url": base,
            "created_at": time.time(),
            "format": 1,
        }
        write_sink_info(spool, SINK_KIND, identity)
        return identity

    def __repr__(self) -> str:
        return (
            f"WandbMetricsSink(project={self._project!r}, entity={self._entity!r}, "
            f"run_id={self._run_id!r}, base_url={self._base_url!r}, "
            f"run_dir={str(self._run_dir)!r})"
        )

    @classmethod
    def resume_transport(
        cls, spool_dir: Path, *, http: HttpClient, environ: Mapping[str, str]
    ) -> WandbTransport:
        """Rebuild the transport of the run spooled in ``spool_dir`` (for ``logs sync``).

        Args:
            spool_dir: ``RUN_DIR/spool/wandb``.
            http: the HTTP client.
            environ: where ``WANDB_API_KEY`` is read.

        Raises:
            MissingSecretError: ``WANDB_API_KEY`` is not set.
            ConfigurationError: ``sink.json`` is missing or incomplete.
        """
        info = read_sink_info(spool_dir)
        key = _api_key(environ.get(API_KEY_ENV))
        try:
            return WandbTransport(
                http=http,
                api_key=key,
                base_url=str(info["base_url"]),
                project=str(info["project"]),
                entity=info.get("entity"),
                run_id=str(info["run_id"]),
                display_name=info.get("run_name"),
                created_at=float(info["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"{spool_dir / SINK_FILE} is incomplete ({exc}); it was not written by the W&B sink"
            ) from None

    # --- MetricsSink --------------------------------------------------------------------

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Send the run's config (merged over earlier calls) with UpsertBucket.

        Values are made JSON-safe here (numpy, paths, attrs instances ...).
        """
        check_open(self._closed, "log_hparams", _SINK)
        self._sender.submit("hparams", {"config": json_safe(check_hparams(config))})

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Queue one history row; ``step`` ``None`` means the previous step + 1.

        Raises:
            MetricsSinkError: a bad step, name or value (checked here, on your thread), or
                the sink is closed.
        """
        check_open(self._closed, "log_metrics", _SINK)
        checked_step = check_step(step)
        row = dict(check_metrics(metrics, _VALUE_ADVICE))  # a copy: the caller may reuse it
        for key in row:
            if type(key) is not str or not key or key[0] == "_":
                _check_key(key, "metric")
        self._sender.submit("metrics", {"metrics": row, "step": checked_step})

    def log_long_text(self, key: str, text: str) -> None:
        """Put ``text`` in the run summary under ``key`` (metric keys are kept)."""
        check_open(self._closed, "log_long_text", _SINK)
        if not isinstance(text, str):
            raise MetricsSinkError(f"log_long_text needs a string text, got {type(text).__name__}")
        _check_key(key, "text")
        self._sender.submit("text", {"key": key, "text": text})

    def sync(self) -> None:
        """Wait until everything logged so far is spooled on disk (no network wait)."""
        if not self._closed:
            self._sender.wait_spooled(max(self._close_timeout, 1.0))

    def get_url(self) -> str | None:
        """``{app_url}/{entity}/{project}/runs/{run_id}``; ``None`` until the entity is known.

        With no ``entity`` configured, the entity is the key's default, known once W&B
        has answered.
        """
        state = self._sender.state
        entity = state.get("entity") or self._entity
        if not entity:
            return None
        project = state.get("project") or self._project
        run_id = state.get("run_id") or self._run_id
        return f"{self._app_url}/{_url_part(entity)}/{_url_part(project)}/runs/{_url_part(run_id)}"

    def close(self, exit_code: int = 0) -> None:
        """Deliver for up to ``close_timeout_s``, then mark the run finished or failed.

        Idempotent. What cannot be delivered in time stays in the spool and a warning
        names ``crucible-train logs sync RUN_DIR``.
        """
        if self._closed:
            return
        if isinstance(exit_code, bool) or not isinstance(exit_code, int):
            raise MetricsSinkError(f"exit_code is {exit_code!r}; use a whole number")
        self._closed = True
        self._sender.close(exit_code, self._close_timeout)

    # --- diagnostics --------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run id (the last part of the run's URL)."""
        return self._run_id

    @property
    def spool_dir(self) -> Path:
        """``RUN_DIR/spool/wandb``."""
        return self._spool_dir

    @property
    def sender(self) -> ReliableSender:
        """The background sender (pending rows, failures, run state)."""
        return self._sender
