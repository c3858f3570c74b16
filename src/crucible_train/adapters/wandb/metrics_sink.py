"""Weights & Biases metrics sink over plain HTTP (adapter layer, W&B wire protocol).

Speaks the protocol the wandb 0.31 SDK speaks (``PROTOCOLS.md`` part A), through our
:class:`~crucible_train.ports.http.HttpClient` only; the ``wandb`` package is never used.
Delivery goes through :class:`~crucible_train.adapters.delivery.sender.ReliableSender`: logging
calls only queue a row, a background thread spools it to ``RUN_DIR/spool/wandb/`` and
sends it under a token bucket, and nothing is lost when W&B is down (``crucible-train
logs sync RUN_DIR`` delivers what a dead process left behind).

Requests:

* ``POST {base}/graphql`` ``Viewer``: checks the key and finds the default entity (a null
  viewer or 401/403 stops delivery with a message naming ``WANDB_API_KEY``);
* ``POST {base}/graphql`` ``UpsertBucket``: creates or resumes the run (client-chosen
  8-character id), and again for every ``log_hparams`` with the merged config as a JSON
  string of ``{"key": {"value": ...}}``. GraphQL ``errors`` in a 200 answer are errors;
* ``POST {base}/files/{entity}/{project}/{run_id}/file_stream``: ``wandb-history.jsonl``
  lines (the metrics plus ``_step``, ``_runtime``, ``_timestamp``) at offsets that are
  contiguous across requests and restarts; ``wandb-summary.json`` at offset 0, one line
  replacing the whole summary (latest value of every metric, ``log_long_text`` keys,
  ``_step``, ``_runtime``, ``_timestamp``, ``_wandb.runtime``); ``{}`` as a heartbeat when
  idle; ``{"complete": true, "exitcode": N}`` last.

Auth is HTTP Basic ``api:<key>``; the key never appears in logs, errors, reprs or files.

Values: numbers (``bool``, ``int``, ``float``, numpy scalars) and strings; anything else
is refused with :class:`~crucible_train.errors.MetricsSinkError` on the caller's thread.
NaN and infinities go out exactly as wandb 0.31.0 sends them (recorded by running the SDK
against ``tests/servers/fake_wandb.py``): as the bare JSON tokens ``NaN``, ``Infinity``
and ``-Infinity`` inside history and summary lines (``{"loss":NaN,"_step":0,...}``); in
the config JSON string NaN becomes ``null`` and infinities stay bare tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
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
from crucible_train.adapters.delivery.transport import SpooledRow, Transport
from crucible_train.errors import (
    ConfigurationError,
    HttpClientError,
    MetricsSinkError,
    MissingSecretError,
    PermanentHttpError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpClient, HttpResponse
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

_log = logging.getLogger(__name__)

SINK_KIND: Final = "wandb"
"""The sink's backend name, and its spool directory under ``RUN_DIR/spool/``."""
API_KEY_ENV: Final = "WANDB_API_KEY"
"""Where the API key comes from (the container and ``logs sync`` read it)."""
DEFAULT_BASE_URL: Final = "https://api.wandb.ai"
"""The W&B cloud API (wandb 0.31 defaults to the CoreWeave Forge proxy of the same API)."""

# wandb 0.31 moved the hosted UI to CoreWeave Forge: these Forge hosts front these APIs.
_FORGE_HOSTS: Final = {
    "forge.coreweave.com": "api.wandb.ai",
    "qa.forge.coreweave.com": "api.qa.wandb.ai",
}
_FORGE_APP_PATH: Final = "/wandb"
_RUN_ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_RUN_ID_LENGTH: Final = 8
_FORBIDDEN_NAME_CHARS: Final = frozenset("/\\#?%:")  # W&B refuses these in ids and names
_RESERVED_KEYS: Final = frozenset({"_step", "_runtime", "_timestamp", "_wandb"})
_MAX_BODY_BYTES: Final = 8 * 1024 * 1024  # W&B caps a file_stream body at about 10 MiB
_SINK: Final = "W&B sink"  # how messages name this sink
_VALUE_ADVICE: Final = "W&B history takes numbers (NaN and infinities included) and strings"

_VIEWER_QUERY: Final = (
    "query Viewer { viewer { id entity username email teams { edges { node { name } } } } }"
)
_UPSERT_MUTATION: Final = """
mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String,
                      $displayName: String, $config: JSONString) {
  upsertBucket(input: {id: $id, name: $name, modelName: $project, entityName: $entity,
                       displayName: $displayName, config: $config}) {
    bucket {
      id name displayName config historyLineCount summaryMetrics
      project { name entity { name } }
    }
    inserted
  }
}
""".strip()


# --- URLs -----------------------------------------------------------------------------


def _forge_host(url: str) -> str | None:
    hostname = urlsplit(url).hostname
    for forge, api in _FORGE_HOSTS.items():
        if hostname in (forge, f"api.{forge}", api):
            return forge
    return None


def api_to_app_url(base_url: str) -> str:
    """The UI address for an API base URL, as wandb 0.31's ``util.api_to_app_url``.

    * ``https://api.wandb.ai`` (and the Forge hosts) → ``https://forge.coreweave.com/wandb``
      (SDKs before CoreWeave's Forge gave ``https://wandb.ai``; pass ``app_url`` to keep
      that);
    * ``https://api.wandb.<tld>`` → ``https://wandb.<tld>`` (``api.wandb.test`` →
      ``app.wandb.test``);
    * ``https://api.<company>.<tld>`` → ``https://app.<company>.<tld>``;
    * anything else (``http://localhost:8080``) is the UI address as is.
    """
    if host := _forge_host(base_url):
        return f"https://{host}{_FORGE_APP_PATH}"
    if "://api.wandb.test" in base_url:
        return base_url.replace("://api.", "://app.").rstrip("/")
    if "://api.wandb." in base_url:
        return base_url.replace("://api.", "://").rstrip("/")
    if "://api." in base_url:
        return base_url.replace("://api.", "://app.").rstrip("/")
    return base_url.rstrip("/")


def _api_base(base_url: str) -> str:
    """Where API calls go: a Forge host is a proxy of the W&B API behind it."""
    parts = urlsplit(base_url)
    if parts.hostname in _FORGE_HOSTS or (
        parts.hostname is not None and parts.hostname.removeprefix("api.") in _FORGE_HOSTS
    ):
        forge = parts.hostname.removeprefix("api.")
        return f"https://{_FORGE_HOSTS[forge]}"
    return base_url.rstrip("/")


def _url_part(text: str) -> str:
    return quote(text, safe="=+&$@")


def generate_run_id(rng: random.Random | None = None) -> str:
    """A new run id as the SDK makes them: 8 characters from ``[a-z0-9]``."""
    source = rng if rng is not None else random.SystemRandom()
    return "".join(source.choice(_RUN_ID_ALPHABET) for _ in range(_RUN_ID_LENGTH))


# --- JSON helpers ---------------------------------------------------------------------


def _config_values(value: Any) -> Any:
    """``value`` with NaN as ``null``, as the SDK encodes config (infinities stay tokens)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _config_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_config_values(item) for item in value]
    return value


def _line(value: Mapping[str, Any]) -> str:
    # allow_nan: W&B history and summary lines carry NaN/Infinity as bare tokens.
    return json.dumps(value, separators=(",", ":"), allow_nan=True)


def _parse_json_string(text: Any) -> dict[str, Any]:
    """A JSONString field of a GraphQL answer (a string, or already an object)."""
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- transport ------------------------------------------------------------------------


class WandbTransport(Transport):
    """The W&B wire protocol for one run, driven by the sender's thread.

    Args:
        http: the HTTP client.
        api_key: the W&B API key (kept in memory only).
        base_url: the API base URL.
        project: the project name.
        entity: the entity (user or team); ``None`` for the key's default entity.
        run_id: the run's id (the name in the URL).
        display_name: the name shown in the UI; ``None`` lets the server choose.
        created_at: Unix time the run started (``_runtime`` counts from it).
        request_timeout_s: seconds per GraphQL request.
        file_stream_timeout_s: seconds per file_stream request.
    """

    def __init__(
        self,
        *,
        http: HttpClient,
        api_key: str,
        base_url: str,
        project: str,
        entity: str | None,
        run_id: str,
        display_name: str | None,
        created_at: float,
        request_timeout_s: float = 30.0,
        file_stream_timeout_s: float = 60.0,
    ) -> None:
        self._http = http
        token = base64.b64encode(f"api:{api_key}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self._secrets = (token, api_key)
        self._base = _api_base(base_url)
        self._project = project
        self._entity = entity
        self._run_id = run_id
        self._display_name = display_name
        self._created_at = float(created_at)
        self._request_timeout = request_timeout_s
        self._file_stream_timeout = file_stream_timeout_s
        self._state: dict[str, Any] = {}
        self._stop_reported = False

    def __repr__(self) -> str:
        return (
            f"WandbTransport(base_url={self._base!r}, project={self._project!r}, "
            f"entity={self._entity!r}, run_id={self._run_id!r})"
        )

    # --- HTTP ---------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _post(self, url: str, body: Mapping[str, Any], timeout: float) -> HttpResponse:
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
        try:
            return self._http.request(
                "POST", url, headers=self._headers, data=data, timeout=timeout
            )
        except HttpClientError as exc:
            message = str(exc)
            if self._scrub(message) == message and self._scrub(exc.body or "") == (exc.body or ""):
                raise
            # Defence in depth: a server echoing the key must not put it in our logs.
            clean = type(exc)(self._scrub(message))
            clean.status, clean.retry_after = exc.status, exc.retry_after
            clean.body = self._scrub(exc.body) if exc.body else exc.body
            raise clean from None

    def _graphql(
        self, operation: str, query: str, variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"operationName": operation, "query": query}
        if variables is not None:
            # Unset variables are left out rather than sent as null: null may clear a field.
            body["variables"] = {k: v for k, v in variables.items() if v is not None}
        try:
            response = self._post(f"{self._base}/graphql", body, self._request_timeout)
        except PermanentHttpError as exc:
            if exc.status in (401, 403):
                error = PermanentHttpError(
                    f"W&B refused the API key (HTTP {exc.status} on {operation}); check "
                    f"{API_KEY_ENV} and that the key may write to this entity and project"
                )
                error.status, error.body = exc.status, exc.body
                raise error from None
            if operation == "UpsertBucket" and exc.status == 409:
                # wandb-core retries UpsertBucket conflicts (concurrent updates of a run).
                retry = RetryableHttpError(str(exc))
                retry.status, retry.retry_after, retry.body = 409, exc.retry_after, exc.body
                raise retry from None
            raise
        try:
            answer = response.json()
        except ValueError:
            garbled = RetryableHttpError(f"W&B answered {operation} with something not JSON")
            garbled.status = response.status
            raise garbled from None
        if not isinstance(answer, dict):
            raise PermanentHttpError(f"W&B answered {operation} with a JSON {type(answer)}")
        errors = answer.get("errors")
        if errors:
            messages = [
                str(item.get("message", item)) if isinstance(item, dict) else str(item)
                for item in (errors if isinstance(errors, list) else [errors])
            ]
            error = PermanentHttpError(
                self._scrub(f"W&B refused {operation}: {'; '.join(messages)}")
            )
            error.body = self._scrub(json.dumps(errors)[:500])
            raise error
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    def _viewer_entity(self) -> str:
        viewer = self._graphql("Viewer", _VIEWER_QUERY).get("viewer")
        entity = viewer.get("entity") if isinstance(viewer, dict) else None
        if not isinstance(entity, str) or not entity:
            error = PermanentHttpError(
                f"W&B did not recognise the API key (the Viewer query found no user); "
                f"check {API_KEY_ENV}"
            )
            error.status = 401
            raise error
        return entity

    def _upsert(self, **variables: Any) -> dict[str, Any]:
        data = self._graphql("UpsertBucket", _UPSERT_MUTATION, variables)
        payload = data.get("upsertBucket")
        bucket = payload.get("bucket") if isinstance(payload, dict) else None
        if not isinstance(bucket, dict):
            raise PermanentHttpError("W&B answered UpsertBucket without a bucket")
        return bucket

    def _file_stream(self, body: Mapping[str, Any]) -> None:
        state = self._state
        url = (
            f"{self._base}/files/{quote(state['entity'], safe='')}/"
            f"{quote(state['project'], safe='')}/{quote(state['run_id'], safe='')}/file_stream"
        )
        response = self._post(url, body, self._file_stream_timeout)
        try:
            answer = response.json() if response.body else {}
        except ValueError:
            answer = {}
        if isinstance(answer, dict) and answer.get("stopped") and not self._stop_reported:
            self._stop_reported = True
            _log.warning(
                "W&B: run %s was stopped from the W&B UI; crucible-train keeps logging "
                "(stop the training process yourself if you meant to)",
                state["run_id"],
            )

    # --- Transport ----------------------------------------------------------------------

    def start(self, state: dict[str, Any]) -> dict[str, Any]:
        """Check the key (Viewer), then create or resume the run (UpsertBucket).

        A ``state`` from an earlier start in this run directory is authoritative for the
        offsets, steps and runtime (it records what was acknowledged); for a run id that
        exists on the server but not here, history continues at ``historyLineCount`` and
        the summary, last ``_step``, ``_runtime`` and config are taken from the server.
        """
        viewer_entity = self._viewer_entity()
        if state.get("run_id"):
            bucket = self._upsert(
                id=state.get("storage_id"),
                name=state["run_id"],
                project=state["project"],
                entity=state["entity"],
            )
            new_state = dict(state)
            new_state["storage_id"] = bucket.get("id") or state.get("storage_id")
            self._state = new_state
            return dict(new_state)
        entity = self._entity or viewer_entity
        bucket = self._upsert(
            name=self._run_id,
            project=self._project,
            entity=entity,
            displayName=self._display_name,
        )
        project_info = bucket.get("project")
        project_info = project_info if isinstance(project_info, dict) else {}
        entity_info = project_info.get("entity")
        entity_info = entity_info if isinstance(entity_info, dict) else {}
        lines = bucket.get("historyLineCount")
        lines = lines if isinstance(lines, int) and lines > 0 else 0
        summary: dict[str, Any] = {}
        config: dict[str, Any] = {}
        last_step = -1
        runtime = 0.0
        if lines:
            # An existing run: keep its summary and config, continue its step and runtime.
            summary = _parse_json_string(bucket.get("summaryMetrics"))
            config = {
                key: item["value"]
                for key, item in _parse_json_string(bucket.get("config")).items()
                if isinstance(item, dict) and "value" in item and key != "_wandb"
            }
            step = summary.get("_step")
            last_step = step if isinstance(step, int) else lines - 1
            seen = summary.get("_runtime")
            runtime = float(seen) if isinstance(seen, int | float) else 0.0
        new_state = {
            "entity": str(entity_info.get("name") or entity),
            "project": str(project_info.get("name") or self._project),
            "run_id": str(bucket.get("name") or self._run_id),
            "storage_id": bucket.get("id"),
            "display_name": bucket.get("displayName"),
            "history_base": lines,
            "history_lines": lines,
            "last_step": last_step,
            "start_time": self._created_at - runtime,
            "summary": summary,
            "config": config,
        }
        self._state = new_state
        return dict(new_state)

    def send(self, rows: Sequence[SpooledRow]) -> dict[str, Any]:
        """Deliver rows in order: metrics and texts by file_stream, hparams by UpsertBucket.

        The run state (next history offset, last step, summary, config) is updated on a
        copy and committed only when every request succeeded, so a retry after any
        failure, or after a lost answer, sends the same lines at the same offsets.
        """
        state = dict(self._state)
        summary = dict(state.get("summary") or {})
        config = dict(state.get("config") or {})
        lines: list[str] = []
        line_bytes = 0
        summary_dirty = False
        offset = int(state["history_lines"])
        last_step = int(state["last_step"])
        start_time = float(state["start_time"])

        def push() -> None:
            nonlocal lines, line_bytes, summary_dirty, offset
            files: dict[str, Any] = {}
            if lines:
                files["wandb-history.jsonl"] = {"offset": offset, "content": lines}
            if summary_dirty:
                files["wandb-summary.json"] = {"offset": 0, "content": [_line(summary)]}
            if files:
                self._file_stream({"files": files})
            offset += len(lines)
            lines, line_bytes, summary_dirty = [], 0, False

        for row in rows:
            payload = row.payload
            if row.kind == "metrics":
                metrics = payload.get("metrics") or {}
                given = payload.get("step")
                step = int(given) if isinstance(given, int) else last_step + 1
                runtime = round(max(0.0, row.time - start_time), 6)  # µs: no float noise
                line = _line(
                    {**metrics, "_step": step, "_runtime": runtime, "_timestamp": row.time}
                )
                if line_bytes + len(line) > _MAX_BODY_BYTES and lines:
                    push()
                lines.append(line)
                line_bytes += len(line)
                last_step = step
                summary.update(metrics)
                summary.update(
                    {
                        "_step": step,
                        "_runtime": runtime,
                        "_timestamp": row.time,
                        "_wandb": {"runtime": int(runtime)},
                    }
                )
                summary_dirty = True
            elif row.kind == "text":
                summary[str(payload["key"])] = payload["text"]
                summary_dirty = True
                if len(payload["text"]) + line_bytes > _MAX_BODY_BYTES:
                    push()
            elif row.kind == "hparams":
                push()  # keep the order: what was logged before the config goes first
                config.update(payload.get("config") or {})
                wrapped = {key: {"value": value} for key, value in config.items()}
                self._upsert(
                    name=state["run_id"],
                    project=state["project"],
                    entity=state["entity"],
                    config=_line(_config_values(wrapped)),
                )
            else:
                _log.warning("W&B: skipping a spooled row of unknown kind %r", row.kind)
        push()
        state.update(history_lines=offset, last_step=last_step, summary=summary, config=config)
        self._state = state
        return dict(state)

    def heartbeat(self) -> None:
        """Post ``{}`` to file_stream, as the SDK does after 30 idle seconds."""
        self._file_stream({})

    def finish(self, exit_code: int) -> None:
        """Post ``{"complete": true, "exitcode": N}``: 0 marks finished, else failed."""
        self._file_stream({"complete": True, "exitcode": int(exit_code)})


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
