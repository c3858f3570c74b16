"""Neptune 1.x REST transport (adapter layer, HTTP port only): the requests a run needs.

This is the wire half of the Neptune sink, driven by the shared reliable-delivery sender
from its background thread: ``start`` creates (or, by ``customId``, finds again) the run,
``send`` posts spooled operations, ``heartbeat`` pings. Only endpoints recorded from
neptune-client 1.14 (``PROTOCOLS.md`` part B) are used, in the order the SDK uses them:

1. ``GET  {api}/api/backend/v1/clients/config?alpha=true``          (``X-Neptune-Api-Token``)
2. ``GET  {api}/api/backend/v1/authorization/oauth-token``          (``X-Neptune-Api-Token``)
3. ``POST {iss}/protocol/openid-connect/token``                    (refresh, form body)
4. ``GET  {api}/api/backend/v1/projects/get?projectIdentifier=ws/proj``   (Bearer, as all below)
5. ``POST {api}/api/leaderboard/v1/experiments``                  (create, with ``customId``)
6. ``POST {api}/api/leaderboard/v1/attributes/operations?experimentId=<run uuid>``
7. ``POST {api}/api/leaderboard/v1/attributes/ping?experimentId=<run uuid>``

Retries and back-off belong to the sender: this module raises the HTTP port's
``RetryableHttpError`` / ``PermanentHttpError`` and retries only one thing itself, a call
answered 401, once, after refreshing the access token.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from crucible_train.adapters.delivery.transport import SpooledRow, Transport
from crucible_train.adapters.neptune._auth import (
    NeptuneCredentials,
    OAuthSession,
    is_unauthorized,
    json_object,
    parse_project,
)
from crucible_train.adapters.neptune._operations import (
    Operation,
    failed_operation,
    merge_operations,
)
from crucible_train.errors import HttpClientError, PermanentHttpError
from crucible_train.ports.http import HttpClient, HttpResponse

__all__ = ["PROTOCOL_CLIENT_VERSION", "NeptuneTransport", "RunIdentity"]

_log = logging.getLogger(__name__)

PROTOCOL_CLIENT_VERSION: Final = "1.14.0.post2"
"""The neptune-client version whose wire protocol this transport reproduces.

Sent as ``cliVersion`` and ``X-Neptune-CliVersion`` because servers compare it with the
``pyLibVersions`` range they support; it has to look like a neptune-client version.
"""

MAX_OPERATIONS_PER_REQUEST: Final = 1000
"""The SDK's batch size (``NEPTUNE_ASYNC_BATCH_SIZE``)."""

_MAX_REPORTED_ERRORS: Final = 1000  # distinct per-operation errors remembered for "once"


class RunIdentity(dict[str, Any]):
    """The persisted state of one Neptune run (no secrets): what ``start`` returns.

    Keys: ``custom_id`` (our stable run key), ``project`` (``ws/proj``), ``base_url`` (the
    address the token or ``api_url`` gave), and after a successful start ``api_url``,
    ``application_url``, ``project_id``, ``run_id``, ``short_id``, ``workspace``,
    ``project_name``.
    """


def _version_tuple(text: object) -> tuple[int, ...] | None:
    if not isinstance(text, str):
        return None
    numbers = re.findall(r"\d+", text)
    return tuple(int(number) for number in numbers[:3]) if numbers else None


def _required_text(body: Mapping[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise PermanentHttpError(f"the Neptune server's answer to {what} has no {key!r}")
    return value


class NeptuneTransport(Transport):
    """Creates or resumes one Neptune run and delivers operations to it.

    Args:
        http: the HTTP client (the only way this talks to the network).
        credentials: the parsed API token.
        project: ``'workspace/project'``.
        custom_id: the run's stable ``customId``; the same value finds the same run again.
        timeout: seconds per HTTP request.
        clock: wall-clock seconds, for token expiry; tests pass a fake.

    Thread-safe: the sender calls it from its own thread, ``url`` is read from any thread.
    """

    def __init__(
        self,
        *,
        http: HttpClient,
        credentials: NeptuneCredentials,
        project: str,
        custom_id: str,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._workspace, self._project_name = parse_project(project)
        self._project = f"{self._workspace}/{self._project_name}"
        self._custom_id = custom_id
        self._timeout = timeout
        self._session = OAuthSession(
            http=http, credentials=credentials, timeout=timeout, clock=clock
        )
        self._lock = threading.Lock()
        self._api_url = credentials.api_url
        self._identity: RunIdentity | None = None
        self._reported: set[tuple[str, str]] = set()
        self._resumed = False

    def __repr__(self) -> str:
        return (
            f"NeptuneTransport(project={self._project!r}, api_url={self._api_url!r}, "
            f"custom_id={self._custom_id!r})"
        )

    # --- state --------------------------------------------------------------------------

    @property
    def identity(self) -> RunIdentity | None:
        """The run's identity once :meth:`start` has succeeded, else ``None``."""
        with self._lock:
            return None if self._identity is None else RunIdentity(self._identity)

    @property
    def url(self) -> str | None:
        """``{applicationUrl}/{workspace}/{project}/e/{shortId}`` once the run exists."""
        identity = self.identity
        return None if identity is None else run_url(identity)

    # --- HTTP helpers ---------------------------------------------------------------------

    def _bearer(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """One Bearer-authenticated call; a 401 is retried once after a token refresh."""
        for attempt in range(2):
            all_headers = {**self._session.bearer_headers(self._api_url), **(headers or {})}
            try:
                return self._http.request(
                    method,
                    f"{self._api_url}{path}",
                    headers=all_headers,
                    params=params,
                    json=json,
                    data=data,
                    timeout=self._timeout,
                )
            except HttpClientError as exc:
                if attempt or not is_unauthorized(exc):
                    raise
                self._session.on_unauthorized(self._api_url)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    # --- Transport protocol -------------------------------------------------------------

    def start(self, state: dict[str, Any]) -> dict[str, Any]:
        """Create the run, or find it again by ``customId`` when ``state`` names one.

        Args:
            state: what an earlier ``start`` returned (``{}`` the first time).

        Returns:
            The run's identity, to persist (it holds no secret).

        Raises:
            PermanentHttpError: the token was rejected, the project does not exist or is a
                legacy (version 1) project, or the server answered nonsense.
            RetryableHttpError: the server is unreachable or busy; call again later.
        """
        custom_id = str(state.get("custom_id") or self._custom_id)
        base = self._credentials.api_url
        config = self._session.api_token_get(
            base,
            "/api/backend/v1/clients/config",
            "the client config request",
            params={"alpha": "true"},
        )
        api_url = str(config.get("apiUrl") or base).rstrip("/")
        application_url = str(config.get("applicationUrl") or api_url).rstrip("/")
        self._warn_if_incompatible(config.get("pyLibVersions"))
        self._api_url = api_url
        self._session.exchange(api_url)

        try:
            project = json_object(
                self._bearer(
                    "GET",
                    "/api/backend/v1/projects/get",
                    params={"projectIdentifier": self._project},
                ),
                "the project lookup",
            )
        except PermanentHttpError as exc:
            if exc.status == 404:
                error = PermanentHttpError(
                    f"Neptune project {self._project!r} was not found on {api_url}; check the "
                    "workspace and project names and that your user can see the project"
                )
                error.status = 404
                raise error from None
            raise
        version = project.get("version")
        if isinstance(version, int) and version < 2:
            error = PermanentHttpError(
                f"Neptune project {self._project!r} is a legacy project (version {version}); "
                "the 1.x API used here needs a version 2 project"
            )
            error.status = 400
            raise error
        project_id = _required_text(project, "id", "the project lookup")

        run = json_object(
            self._bearer(
                "POST",
                "/api/leaderboard/v1/experiments",
                json={
                    "projectIdentifier": project_id,
                    "parentId": project_id,
                    "type": "run",
                    "cliVersion": PROTOCOL_CLIENT_VERSION,
                    "customId": custom_id,
                },
                headers={"X-Neptune-CliVersion": PROTOCOL_CLIENT_VERSION},
            ),
            "the run creation",
        )
        run_id = _required_text(run, "id", "the run creation")
        previous = state.get("run_id")
        if previous and previous != run_id:
            _log.warning(
                "Neptune returned run %s for customId %s, not the run %s this directory "
                "logged to before; continuing with the new run",
                run_id,
                custom_id,
                previous,
            )
        identity = RunIdentity(
            custom_id=custom_id,
            project=self._project,
            base_url=base,
            api_url=api_url,
            application_url=application_url,
            project_id=project_id,
            run_id=run_id,
            short_id=str(run.get("shortId") or run_id),
            workspace=str(
                run.get("organizationName") or project.get("organizationName") or self._workspace
            ),
            project_name=str(run.get("projectName") or project.get("name") or self._project_name),
        )
        with self._lock:
            self._identity = identity
            # Rows spooled by an earlier process may have reached the server before it died.
            self._resumed = bool(previous)
        return dict(identity)

    def _warn_if_incompatible(self, versions: object) -> None:
        if not isinstance(versions, Mapping):
            return
        ours = _version_tuple(PROTOCOL_CLIENT_VERSION)
        low = _version_tuple(versions.get("minCompatibleVersion"))
        high = _version_tuple(versions.get("maxCompatibleVersion"))
        if ours is None or ((low is None or low <= ours) and (high is None or ours <= high)):
            return
        _log.warning(
            "this Neptune server supports neptune-client %s to %s; crucible-train speaks the "
            "%s protocol and may be refused",
            versions.get("minCompatibleVersion"),
            versions.get("maxCompatibleVersion"),
            PROTOCOL_CLIENT_VERSION,
        )

    def _run_id(self) -> str:
        with self._lock:
            if self._identity is None:
                raise PermanentHttpError("the Neptune run was used before start() succeeded")
            return str(self._identity["run_id"])

    def send_operations(self, operations: Sequence[Operation], *, resend: bool = False) -> None:
        """POST operations (merged, at most 1000 per request) and report per-op errors.

        Args:
            operations: Neptune operations in order.
            resend: some of them may already be on the server (see :meth:`send`).
        """
        run_id = self._run_id()
        merged = merge_operations(operations)
        for begin in range(0, len(merged), MAX_OPERATIONS_PER_REQUEST):
            chunk = merged[begin : begin + MAX_OPERATIONS_PER_REQUEST]
            response = self._bearer(
                "POST",
                "/api/leaderboard/v1/attributes/operations",
                params={"experimentId": run_id},
                json=chunk,
            )
            self._report_errors(response, resend=resend)

    def send(self, rows: Sequence[SpooledRow]) -> None:
        """Deliver spooled rows (each ``payload["ops"]`` is a list of operations).

        Resending rows is safe: assignments and tag inserts are idempotent, and a series
        point at a step the series already has is refused by the server with a
        ``logSeriesValueError`` instead of being stored twice.
        """
        operations: list[Operation] = []
        for row in rows:
            operations.extend(row.payload.get("ops", ()))
        with self._lock:
            resend = self._resumed
        if operations:
            self.send_operations(operations, resend=resend)
        with self._lock:
            self._resumed = False
        return None

    def _report_errors(self, response: HttpResponse, *, resend: bool) -> None:
        """Log each distinct per-operation error once (the request itself succeeded).

        ``logSeriesValueError`` right after a restart usually means points the dead
        process had already delivered were sent again and refused as duplicates, which is
        harmless, so those are logged at INFO; anywhere else they are WARNINGs (a step that
        went backwards, a value of the wrong type).
        """
        try:
            errors = response.json() if response.body else []
        except ValueError:
            _log.warning("Neptune answered executeOperations with something not JSON")
            return
        if not isinstance(errors, list):
            return
        for error in errors:
            if not isinstance(error, Mapping):
                continue
            kind = str(error.get("errorType", "unknown"))
            description = str(error.get("errorDescription", ""))
            key = (kind, description)
            if key in self._reported:
                continue
            if len(self._reported) < _MAX_REPORTED_ERRORS:
                self._reported.add(key)
            harmless = resend and kind == "logSeriesValueError"
            _log.log(
                logging.INFO if harmless else logging.WARNING,
                "Neptune refused an operation (%s): %s%s",
                kind,
                description,
                " (expected after a restart: already-delivered points were sent again)"
                if harmless
                else "",
            )

    def heartbeat(self) -> None:
        """Ping the run so the server keeps it marked active (the SDK pings every 10 s)."""
        self._bearer(
            "POST",
            "/api/leaderboard/v1/attributes/ping",
            params={"experimentId": self._run_id()},
            data=b"",
        )

    def finish(self, exit_code: int) -> None:
        """Mark the run failed when ``exit_code`` is not 0; otherwise send nothing.

        The 1.x API has no close call: the server marks a run inactive when the pings
        stop, and failure is the field ``sys/failed`` (``false`` since the start). The
        sender calls this after everything else was delivered, also from ``logs sync``
        for a process that died before ``close`` (exit code unknown, so failed).
        """
        if exit_code != 0:
            self.send_operations([failed_operation()])


def run_url(identity: Mapping[str, Any]) -> str | None:
    """The UI address of a started run, ``None`` if the identity lacks the parts."""
    parts = [identity.get(key) for key in ("workspace", "project_name", "short_id")]
    base = identity.get("application_url")
    if not base or not all(parts):
        return None
    workspace, project, short_id = parts
    return f"{base}/{workspace}/{project}/e/{short_id}"
