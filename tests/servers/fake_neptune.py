"""A fake Neptune 1.x server for tests: threaded ``http.server`` on 127.0.0.1, random port.

It implements exactly the endpoints the recorded neptune-client 1.14 used
(``PROTOCOLS.md`` part B), checks auth the way the real server would (API token on the
config and exchange calls, an unexpired Bearer JWT everywhere else), keeps the runs'
fields and series so tests assert on end state, and records every request.

Fault injection:

* ``fail(note, status, count, retry_after=None)``: the next ``count`` requests with that
  note (``"executeOperations"``, ``"createExperiment"``, ...) get ``status``;
* ``down_for(seconds)``: every connection is dropped without an answer for a while;
* ``token_ttl``: lifetime of issued access tokens, short to exercise refreshes.

Use as a context manager; leaving it stops the thread and closes the socket.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "fake-api-key-never-logged"
REALM = "/auth/realms/neptune"
CLIENT_ID = "neptune-cli"


def make_api_token(address: str, *, api_key: str = API_KEY) -> str:
    """A token in Neptune's format pointing at ``address``."""
    payload = {"api_address": address, "api_url": address, "api_key": api_key}
    return base64.b64encode(json.dumps(payload).encode()).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any]) -> str:
    """An unsigned-looking JWT with ``claims`` (clients never verify it)."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(b'fake-signature')}"


class _QuietServer(ThreadingHTTPServer):
    """Does not print a traceback when a client hangs up mid-request (a killed process)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeNeptune:
    """The server, its state and its request log."""

    def __init__(self, *, token_ttl: float = 3600.0, projects: dict[str, int] | None = None):
        self.token_ttl = token_ttl
        self.projects: dict[str, dict[str, Any]] = {}
        for identifier, version in (projects or {"ws/proj": 2}).items():
            workspace, name = identifier.split("/")
            self.projects[identifier] = {
                "id": str(uuid.uuid4()),
                "name": name,
                "organizationName": workspace,
                "organizationId": str(uuid.uuid4()),
                "projectKey": name.upper(),
                "version": version,
            }
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._access: dict[str, float] = {}
        self._refresh: set[str] = set()
        self._counter = itertools.count(1)
        self._faults: list[dict[str, Any]] = []
        self._down_until = 0.0
        self.api_token = ""
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeNeptune:
        self.api_token = make_api_token(self.url)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- faults ---------------------------------------------------------------------------

    def fail(self, note: str, status: int, count: int = 1, retry_after: float | None = None):
        with self.lock:
            self._faults.append(
                {"note": note, "status": status, "count": count, "retry_after": retry_after}
            )

    def down_for(self, seconds: float) -> None:
        with self.lock:
            self._down_until = time.monotonic() + seconds

    def expire_access_tokens(self) -> None:
        """Make every issued access token invalid (the next Bearer call gets 401)."""
        with self.lock:
            self._access.clear()

    # --- views for assertions --------------------------------------------------------------

    def notes(self) -> list[str]:
        with self.lock:
            return [request["note"] for request in self.requests]

    def only_run(self) -> dict[str, Any]:
        with self.lock:
            assert len(self.runs) == 1, f"expected one run, found {len(self.runs)}"
            return next(iter(self.runs.values()))

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def series_steps(self, path: str) -> list[float]:
        """Steps stored in series ``path`` of the only run (``[]`` before it exists)."""
        with self.lock:
            if not self.runs:
                return []
        return [point["step"] for point in self.only_run()["series"].get(path, [])]

    # --- request handling -------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

            def do_GET(self) -> None:
                fake._dispatch(self)

            def do_POST(self) -> None:
                fake._dispatch(self)

        return Handler

    def _note(self, method: str, path: str) -> str:
        routes = {
            ("GET", "/api/backend/v1/clients/config"): "getClientConfig",
            ("GET", "/api/backend/v1/authorization/oauth-token"): "exchangeApiToken",
            ("POST", f"{REALM}/protocol/openid-connect/token"): "oidc:refresh_token",
            ("GET", "/api/backend/v1/projects/get"): "getProject",
            ("POST", "/api/leaderboard/v1/experiments"): "createExperiment",
            ("POST", "/api/leaderboard/v1/attributes/operations"): "executeOperations",
            ("POST", "/api/leaderboard/v1/attributes/ping"): "ping",
        }
        return routes.get((method, path), "UNHANDLED")

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self.lock:
            down = time.monotonic() < self._down_until
        if down:
            # Drop the connection without an answer: the client sees it as unreachable.
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        parts = urlsplit(handler.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        note = self._note(handler.command, parts.path)
        record: dict[str, Any] = {
            "t": time.time(),
            "method": handler.command,
            "path": parts.path,
            "query": query,
            "note": note,
            "headers": dict(handler.headers.items()),
            "raw": raw,
        }
        status, body, headers = self._answer(note, query, raw, handler.headers, record)
        record["status"] = status
        with self.lock:
            self.requests.append(record)
        data = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _take_fault(self, note: str) -> dict[str, Any] | None:
        with self.lock:
            for fault in self._faults:
                if fault["note"] == note and fault["count"] > 0:
                    fault["count"] -= 1
                    return fault
        return None

    def _answer(
        self, note: str, query: dict[str, str], raw: bytes, headers: Any, record: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        fault = self._take_fault(note)
        if fault is not None:
            extra = {}
            if fault["retry_after"] is not None:
                extra["Retry-After"] = str(fault["retry_after"])
            record["fault"] = True
            return fault["status"], {"title": "fault injected"}, extra
        if note == "UNHANDLED":
            return 404, {"title": "not found (fake)"}, {}
        if note in ("getClientConfig", "exchangeApiToken"):
            if headers.get("X-Neptune-Api-Token") != self.api_token:
                return 401, {"title": "invalid API token"}, {}
            if note == "getClientConfig":
                return 200, self._config(), {}
            return 200, self._issue(exchange=True), {}
        if note == "oidc:refresh_token":
            form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
            record["form"] = form
            with self.lock:
                valid = form.get("refresh_token") in self._refresh
            if form.get("grant_type") != "refresh_token" or form.get("client_id") != CLIENT_ID:
                return 400, {"error": "invalid_request"}, {}
            if not valid:
                return 400, {"error": "invalid_grant"}, {}
            return 200, self._issue(exchange=False), {}
        if not self._bearer_ok(headers.get("Authorization", "")):
            return 401, {"title": "unauthorized"}, {}
        body = json.loads(raw) if raw else None
        record["json"] = body
        if note == "getProject":
            project = self.projects.get(query.get("projectIdentifier", ""))
            return (200, project, {}) if project else (404, {"title": "project not found"}, {})
        if note == "createExperiment":
            return self._create(body)
        run = self.runs.get(query.get("experimentId", ""))
        if run is None:
            return 404, {"title": "run not found"}, {}
        if note == "ping":
            with self.lock:
                run["pings"] += 1
            return 200, None, {}
        return 200, self._apply(run, body), {}

    def _config(self) -> dict[str, Any]:
        return {
            "apiUrl": self.url,
            "applicationUrl": self.url + "/app",
            "pyLibVersions": {
                "minRecommendedVersion": "1.0.0",
                "minCompatibleVersion": "1.0.0",
                "maxCompatibleVersion": "1.99.0",
            },
            "security": {
                "clientId": CLIENT_ID,
                "openIdDiscovery": f"{self.url}{REALM}/.well-known/openid-configuration",
            },
        }

    def _issue(self, *, exchange: bool) -> dict[str, Any]:
        now = time.time()
        access = make_jwt(
            {
                "iss": self.url + REALM,
                "azp": CLIENT_ID,
                "exp": int(now + self.token_ttl),
                "jti": uuid.uuid4().hex,
            }
        )
        refresh = f"refresh-{uuid.uuid4().hex}"
        with self.lock:
            self._access[access] = now + self.token_ttl
            self._refresh.add(refresh)
        if exchange:
            return {"accessToken": access, "refreshToken": refresh, "username": "fakeuser"}
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": int(self.token_ttl),
        }

    def _bearer_ok(self, authorization: str) -> bool:
        if not authorization.startswith("Bearer "):
            return False
        with self.lock:
            expires = self._access.get(authorization.removeprefix("Bearer "))
        return expires is not None and expires > time.time()

    def _create(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        project = next(
            (p for p in self.projects.values() if p["id"] == body.get("projectIdentifier")), None
        )
        if project is None:
            return 404, {"title": "project not found"}, {}
        with self.lock:
            custom_id = body.get("customId")
            for run in self.runs.values():
                if custom_id and run["customId"] == custom_id and run["projectId"] == project["id"]:
                    return 200, run["experiment"], {}
            run_id = str(uuid.uuid4())
            experiment = {
                "id": run_id,
                "organizationId": project["organizationId"],
                "organizationName": project["organizationName"],
                "projectId": project["id"],
                "projectName": project["name"],
                "parentId": project["id"],
                "shortId": f"{project['projectKey']}-{next(self._counter)}",
                "trashed": False,
                "type": "run",
                "customId": custom_id,
            }
            self.runs[run_id] = {
                "experiment": experiment,
                "customId": custom_id,
                "projectId": project["id"],
                "fields": {},
                "series": {},
                "tags": set(),
                "pings": 0,
            }
        return 200, experiment, {}

    def _apply(self, run: dict[str, Any], operations: list[dict[str, Any]]) -> list[Any]:
        errors: list[dict[str, str]] = []
        with self.lock:
            for operation in operations:
                path = operation["path"]
                (kind, value), *_rest = ((k, v) for k, v in operation.items() if k != "path")
                if kind.startswith("assign"):
                    run["fields"][path] = (kind, value["value"])
                elif kind == "insertStrings":
                    run["tags"].update(value["values"])
                elif kind in ("logFloats", "logStrings"):
                    series = run["series"].setdefault(path, [])
                    for entry in value["entries"]:
                        if series and entry["step"] <= series[-1]["step"]:
                            errors.append(
                                {
                                    "errorType": "logSeriesValueError",
                                    "errorDescription": f"{path}: step {entry['step']} is not "
                                    f"greater than {series[-1]['step']}",
                                }
                            )
                            continue
                        series.append(dict(entry, kind=kind))
                else:
                    errors.append(
                        {
                            "errorType": "metadata_inconsistency",
                            "errorDescription": f"{path}: unsupported operation {kind}",
                        }
                    )
        return errors


def iter_requests(fake: FakeNeptune, note: str) -> Iterator[dict[str, Any]]:
    """The recorded requests with ``note``, in order."""
    with fake.lock:
        records = list(fake.requests)
    return (record for record in records if record["note"] == note)
