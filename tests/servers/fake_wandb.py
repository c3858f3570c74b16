"""A fake W&B server for tests: threaded ``http.server`` on 127.0.0.1, random port.

It implements what a minimal logger uses (``PROTOCOLS.md`` part A): GraphQL ``Viewer``
and ``UpsertBucket``, and ``POST /files/{entity}/{project}/{run}/file_stream``. It keeps
each run's history **by offset** and records a conflict whenever an offset receives
different content than it already holds (``conflicts`` must stay empty), keeps the latest
summary line, the config and the finish flags, and records every request (method, path,
headers, parsed body, status, time).

It also answers enough of the rest of the SDK's traffic (``ServerFeaturesQuery``,
``CreateRunFiles`` and the uploads, ``RunResumeStatus``, unknown operations with
``{"data": {}}``) for the real ``wandb`` package to run against it.

Fault injection:

* ``fail(kind, status, count=1, retry_after=None)``: the next ``count`` requests of that
  kind (``"Viewer"``, ``"UpsertBucket"``, ``"file_stream"``, or ``"any"``) are answered
  ``status`` (with a ``Retry-After`` header when given);
* ``delay``: seconds every answer is held back (slow server); ``delay_next(kind, s, n)``
  holds back only the next ``n`` requests of a kind (timeouts);
* ``down_for(seconds, mode="drop")``: for a while every connection is closed without an
  answer (``"drop"``) or refused because nothing listens on the port (``"refuse"``);
* ``echo_auth``: 401 answers quote the ``Authorization`` header back (a careless server),
  to check that the key is scrubbed from everything the sink reports.

Use as a context manager; leaving it stops the threads and closes the sockets.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

API_KEY = "fakekey00123456789abcdef0123456789abcdef"  # 40 characters, like a real key


def basic_auth(api_key: str = API_KEY) -> str:
    """The ``Authorization`` header value W&B expects for ``api_key``."""
    return "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeWandb:
    """The server, its runs and its request log.

    Args:
        api_key: the only key accepted (401 otherwise); ``None`` accepts any key.
        default_entity: the Viewer's entity.
        delay: seconds every answer is held back.
    """

    def __init__(
        self,
        *,
        api_key: str | None = API_KEY,
        default_entity: str = "fakeuser",
        delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.default_entity = default_entity
        self.delay = delay
        self.echo_auth = False  # a careless server: 401 answers quote the Authorization header
        self.runs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.conflicts: list[str] = []
        self.lock = threading.Lock()
        self._faults: list[dict[str, Any]] = []
        self._delays: list[dict[str, Any]] = []
        self._down_until = 0.0
        self._connections: set[socket.socket] = set()
        self._ids = itertools.count(1)
        self._server: _Server | None = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self._reviver: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeWandb:
        """Serve in a background thread."""
        self._serve()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        # A short poll interval: shutdown() waits for it (tests stop servers often).
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.02), daemon=True
        )
        self._thread.start()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        # Kept-alive connections outlive the listening socket; cut them too, as a
        # crashed server would.
        with self.lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._stopping.set()
        if self._reviver is not None:
            self._reviver.join(30)
        self._shutdown()

    def __enter__(self) -> FakeWandb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault injection --------------------------------------------------------------------

    def fail(
        self, kind: str, status: int, count: int = 1, *, retry_after: float | None = None
    ) -> None:
        """Answer the next ``count`` requests of ``kind`` with ``status``."""
        with self.lock:
            self._faults.append(
                {"kind": kind, "status": status, "count": count, "retry_after": retry_after}
            )

    def delay_next(self, kind: str, seconds: float, count: int = 1) -> None:
        """Hold back the answers to the next ``count`` requests of ``kind``."""
        with self.lock:
            self._delays.append({"kind": kind, "seconds": seconds, "count": count})

    def down_for(self, seconds: float, *, mode: str = "drop") -> None:
        """Be unreachable for ``seconds``: drop connections, or refuse them."""
        if mode == "drop":
            with self.lock:
                self._down_until = time.monotonic() + seconds
            return
        assert mode == "refuse"
        self._shutdown()

        def revive() -> None:
            if self._stopping.wait(seconds):
                return
            for _ in range(100):  # the port may linger in TIME_WAIT for a moment
                try:
                    self._server = _Server(("127.0.0.1", self.port), self._handler_class())
                    break
                except OSError:
                    time.sleep(0.05)
            self._serve()

        self._reviver = threading.Thread(target=revive, daemon=True)
        self._reviver.start()

    def _take(self, table: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
        with self.lock:
            for entry in table:
                if entry["kind"] in (kind, "any") and entry["count"] > 0:
                    entry["count"] -= 1
                    return dict(entry)
        return None

    # --- state helpers for tests ---------------------------------------------------------

    def add_run(
        self,
        entity: str,
        project: str,
        name: str,
        *,
        history: list[dict[str, Any]] | None = None,
        summary: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a run as if an earlier process had logged ``history`` to it."""
        run = self._new_run(entity, project, name)
        for offset, row in enumerate(history or []):
            run["history"][offset] = json.dumps(row)
        run["summary"] = dict(summary or {})
        run["config"] = {key: {"value": value} for key, value in (config or {}).items()}
        return run

    def run(self, entity: str, project: str, name: str) -> dict[str, Any]:
        """A run's state: ``history`` (offset → line), ``summary``, ``config`` ..."""
        return self.runs[(entity, project, name)]

    def history_rows(self, entity: str, project: str, name: str) -> list[dict[str, Any]]:
        """The history lines, parsed, in offset order; asserts the offsets are contiguous."""
        history = self.run(entity, project, name)["history"]
        offsets = sorted(history)
        assert offsets == list(range(len(offsets))), f"history offsets not contiguous: {offsets}"
        return [json.loads(history[offset]) for offset in offsets]

    def requests_of(self, kind: str) -> list[dict[str, Any]]:
        """Recorded requests of one kind (``"Viewer"``, ``"UpsertBucket"``, ``"file_stream"``)."""
        with self.lock:
            return [r for r in self.requests if r["kind"] == kind]

    def _new_run(self, entity: str, project: str, name: str) -> dict[str, Any]:
        run = {
            "id": base64.b64encode(f"Run:v1:{name}:{next(self._ids)}".encode()).decode(),
            "entity": entity,
            "project": project,
            "name": name,
            "display_name": f"fake-run-{len(self.runs) + 1}",
            "history": {},
            "summary": {},
            "config": {},
            "complete": False,
            "exitcode": None,
            "heartbeats": 0,
            "preempting": False,
        }
        self.runs[(entity, project, name)] = run
        return run

    # --- request handling ------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with fake.lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake.lock:
                    fake._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PUT(self) -> None:
                fake._handle(self)

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if time.monotonic() < self._down_until or self._server is None:
            # Unreachable: close the connection without an answer.
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        path = urlsplit(handler.path).path
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        kind = "other"
        if path == "/graphql" and isinstance(body, dict):
            kind = str(body.get("operationName") or "graphql")
        elif path.endswith("/file_stream"):
            kind = "file_stream"
        elif handler.command == "PUT":
            kind = "upload"
        record: dict[str, Any] = {
            "t": time.time(),
            "method": handler.command,
            "path": path,
            "kind": kind,
            "headers": dict(handler.headers.items()),
            "body": body,
            "status": None,
        }
        with self.lock:
            self.requests.append(record)
        wait = self.delay
        slow = self._take(self._delays, kind)
        if slow is not None:
            wait += slow["seconds"]
        if wait:
            time.sleep(wait)
        status, answer, headers = self._answer(handler, kind, path, body)
        record["status"] = status
        payload = json.dumps(answer).encode() if answer is not None else b""
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            handler.close_connection = True  # the client gave up (timed out)

    def _answer(
        self, handler: BaseHTTPRequestHandler, kind: str, path: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        fault = self._take(self._faults, kind)
        if fault is not None:
            headers = {}
            if fault["retry_after"] is not None:
                headers["Retry-After"] = str(fault["retry_after"])
            return fault["status"], {"error": f"injected {fault['status']}"}, headers
        if kind == "upload":
            return 200, None, {}
        if self.api_key is not None and handler.headers.get("Authorization") != basic_auth(
            self.api_key
        ):
            message = "user is not logged in"
            if self.echo_auth:
                message += f" (got {handler.headers.get('Authorization')})"
            return 401, {"errors": [{"message": message}]}, {}
        if path == "/graphql":
            return 200, self._graphql(kind, body), {}
        if kind == "file_stream":
            return self._file_stream(path, body)
        return 404, {"error": "not found"}, {}

    def _graphql(self, operation: str, body: dict[str, Any]) -> Any:
        variables = body.get("variables") or {}
        if operation == "Viewer":
            entity = self.default_entity
            return {
                "data": {
                    "viewer": {
                        "id": "VXNlcjox",
                        "entity": entity,
                        "username": "fakeuser",
                        "email": "fake@example.com",
                        "flags": "{}",
                        "teams": {"edges": [{"node": {"name": entity}}]},
                    }
                }
            }
        if operation == "UpsertBucket":
            return self._upsert(variables)
        if operation == "ServerFeaturesQuery":
            return {"data": {"serverInfo": {"features": []}}}
        if operation == "CreateRunFiles":
            run = variables.get("run")
            files = [
                {"name": name, "uploadUrl": f"{self.url}/_upload/{run}/{name}"}
                for name in variables.get("files", [])
            ]
            return {"data": {"createRunFiles": {"runID": "x", "uploadHeaders": [], "files": files}}}
        if operation == "RunResumeStatus":
            return {"data": {"model": {"bucket": None}}}
        return {"data": {}}

    def _upsert(self, variables: dict[str, Any]) -> Any:
        name = variables.get("name")
        if not name:
            return {"errors": [{"message": "name is required"}]}
        project = variables.get("project") or "uncategorized"
        entity = variables.get("entity") or self.default_entity
        config_text = variables.get("config")
        if config_text is not None and not isinstance(config_text, str):
            return {"errors": [{"message": "config must be a JSONString"}]}
        with self.lock:
            run = self.runs.get((entity, project, name))
            inserted = run is None
            if run is None:
                run = self._new_run(entity, project, name)
            if variables.get("displayName"):
                run["display_name"] = variables["displayName"]
            if config_text is not None:
                try:
                    run["config"] = json.loads(config_text)
                except ValueError:
                    return {"errors": [{"message": "config is not JSON"}]}
            bucket = {
                "id": run["id"],
                "name": name,
                "displayName": run["display_name"],
                "description": None,
                "config": json.dumps(run["config"]),
                "sweepName": None,
                "historyLineCount": len(run["history"]),
                "summaryMetrics": json.dumps(run["summary"]),
                "project": {
                    "id": "UHJvamVjdDox",
                    "name": project,
                    "entity": {"id": "RW50aXR5OjE=", "name": entity},
                },
            }
        return {"data": {"upsertBucket": {"bucket": bucket, "inserted": inserted}}}

    def _file_stream(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if len(parts) != 5 or parts[0] != "files":
            return 404, {"error": "not found"}, {}
        _files, entity, project, name, _fs = parts
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object"}, {}
        with self.lock:
            run = self.runs.get((entity, project, name))
            if run is None:
                return 404, {"error": f"run {entity}/{project}/{name} not found"}, {}
            if not body:
                run["heartbeats"] += 1
            files = body.get("files") or {}
            history = files.get("wandb-history.jsonl")
            if history is not None:
                offset = history["offset"]
                for index, line in enumerate(history["content"]):
                    json.loads(line)  # each line must be JSON (NaN tokens allowed)
                    at = offset + index
                    previous = run["history"].get(at)
                    if previous is not None and previous != line:
                        self.conflicts.append(f"offset {at}: {previous!r} then {line!r}")
                    run["history"][at] = line
            summary = files.get("wandb-summary.json")
            if summary is not None:
                assert summary["offset"] == 0, summary
                assert len(summary["content"]) == 1, summary
                run["summary"] = json.loads(summary["content"][0])
            if body.get("preempting"):
                run["preempting"] = True
            if body.get("complete"):
                run["complete"] = True
                run["exitcode"] = body.get("exitcode")
        return 200, {"exitcode": None, "limits": {}}, {}


def serve(**options: Any) -> Iterator[FakeWandb]:
    """Context-manager helper for fixtures: ``yield from serve()``."""
    with FakeWandb(**options) as fake:
        yield fake
