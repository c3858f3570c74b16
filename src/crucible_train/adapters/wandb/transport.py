"""The W&B wire protocol for one run (adapter layer, over the HTTP port).

Speaks the protocol the wandb 0.31 SDK speaks (``PROTOCOLS.md`` part A), through our
:class:`~crucible_train.ports.http.HttpClient` only; the ``wandb`` package is never used.
:class:`WandbTransport` is the :class:`~crucible_train.adapters.delivery.transport.Transport`
that :class:`~crucible_train.adapters.wandb.metrics_sink.WandbMetricsSink` hands to its
:class:`~crucible_train.adapters.delivery.sender.ReliableSender` (and that ``crucible-train
logs sync`` rebuilds from a spool): it runs on the sender's thread and turns spooled rows
into requests.

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

NaN and infinities go out exactly as wandb 0.31.0 sends them (recorded by running the SDK
against ``tests/servers/fake_wandb.py``): as the bare JSON tokens ``NaN``, ``Infinity``
and ``-Infinity`` inside history and summary lines (``{"loss":NaN,"_step":0,...}``); in
the config JSON string NaN becomes ``null`` and infinities stay bare tokens.

Addresses: a CoreWeave Forge host (where wandb 0.31 moved the hosted UI) is a proxy of the
W&B API behind it, so requests go to that API; :func:`api_to_app_url` is the other
direction, the UI address for an API base URL.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlsplit

from crucible_train.adapters.delivery.transport import SpooledRow, Transport
from crucible_train.errors import (
    HttpClientError,
    PermanentHttpError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpClient, HttpResponse

__all__ = ["API_KEY_ENV", "WandbTransport", "api_to_app_url"]

_log = logging.getLogger(__name__)

API_KEY_ENV: Final = "WANDB_API_KEY"
"""Where the API key comes from (the container and ``logs sync`` read it)."""

# wandb 0.31 moved the hosted UI to CoreWeave Forge: these Forge hosts front these APIs.
_FORGE_HOSTS: Final = {
    "forge.coreweave.com": "api.wandb.ai",
    "qa.forge.coreweave.com": "api.qa.wandb.ai",
}
_FORGE_APP_PATH: Final = "/wandb"
_MAX_BODY_BYTES: Final = 8 * 1024 * 1024  # W&B caps a file_stream body at about 10 MiB

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
