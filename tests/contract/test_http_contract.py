"""HttpClient contract: protocol conformance, idempotent close; noop refuses requests;
working adapters talk to a real ``http.server`` on 127.0.0.1 (a real socket, no mocks),
except the fake, which gets the same server's answers as an in-memory route."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crucible_train.errors import (
    BackendNotConfiguredError,
    HttpConnectionError,
    HttpTimeoutError,
    PermanentHttpError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpResponse

from fakes import FakeHttpClient, FakeHttpRequest

PORT = "http"

CALLS: dict[str, Callable[[Any], object]] = {
    "request": lambda c: c.request("GET", "http://127.0.0.1:9/", timeout=1.0),
}


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_close_is_idempotent(adapter):
    adapter.close()
    adapter.close()


def test_calls_cover_every_port_method(port_work_methods):
    # close() is checked above: it must work on every adapter, noop included.
    assert set(CALLS) == port_work_methods - {"close"}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)


# --- working adapters against a loopback server ----------------------------------------------


HANG = None
"""What :func:`_answer` returns for a request the server never answers."""


def _answer(
    method: str, path: str, body: bytes, headers: Mapping[str, str]
) -> tuple[int, Any, dict[str, str]] | None:
    """The contract server: /echo (200 JSON echo), /missing (404), /busy (503 with
    Retry-After), /hang (no answer, :data:`HANG`), anything else 500."""
    if path.startswith("/echo"):
        payload = {
            "method": method,
            "path": path,
            "json": json.loads(body) if body else None,
            "x_test": headers.get("x-test"),
        }
        return 200, payload, {}
    if path == "/missing":
        return 404, {"message": "no such run"}, {}
    if path == "/busy":
        return 503, {"message": "overloaded"}, {"Retry-After": "2"}
    if path == "/hang":
        return HANG
    return 500, {"message": "unknown route"}, {}


class _Handler(BaseHTTPRequestHandler):
    """Serves :func:`_answer` over a real socket."""

    release: threading.Event  # set on the server class by the fixture

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = _answer(self.command, self.path, raw, headers)
        if answer is HANG:
            # Never answer; wait (bounded) until the test is over, then drop the socket.
            type(self).release.wait(timeout=30)
            self.close_connection = True
            return
        status, payload, extra = answer
        encoded = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(encoded)

    do_GET = do_POST = _route  # noqa: N815 - http.server's naming


def _fake_route(request: FakeHttpRequest) -> HttpResponse:
    """Serves :func:`_answer` to the fake client, in memory."""
    answer = _answer(request.method, request.path, request.body or b"", request.headers)
    if answer is HANG:
        raise HttpTimeoutError(f"{request.url}: no answer within {request.timeout} s")
    status, payload, extra = answer
    headers = {"Content-Type": "application/json", **extra}
    return HttpResponse(status=status, headers=headers, body=json.dumps(payload).encode())


@pytest.fixture(scope="module")
def loopback() -> Iterator[str]:
    """A threaded HTTP server on an ephemeral loopback port; yields its base URL."""
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(working_adapter: Any, loopback: str) -> str:
    """The base URL of the contract server for ``working_adapter``: the loopback server,
    or (for the fake, which has no sockets) the same answers as an in-memory route."""
    if isinstance(working_adapter, FakeHttpClient):
        return working_adapter.serve("http://contract-server.fake:8080", _fake_route)
    return loopback


def test_json_round_trip(working_adapter, server):
    response = working_adapter.request(
        "POST",
        f"{server}/echo",
        json={"loss": 0.5, "name": "run"},
        headers={"X-Test": "yes"},
        params={"page": "2"},
        timeout=5.0,
    )
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "method": "POST",
        "path": "/echo?page=2",
        "json": {"loss": 0.5, "name": "run"},
        "x_test": "yes",
    }


def test_404_is_permanent(working_adapter, server):
    with pytest.raises(PermanentHttpError) as info:
        working_adapter.request("GET", f"{server}/missing", timeout=5.0)
    assert info.value.status == 404
    assert "no such run" in str(info.value)


def test_503_is_retryable_with_retry_after(working_adapter, server):
    with pytest.raises(RetryableHttpError) as info:
        working_adapter.request("POST", f"{server}/busy", json={}, timeout=5.0)
    assert info.value.status == 503
    assert info.value.retry_after == 2.0
    assert "overloaded" in (info.value.body or "")


def test_server_that_never_answers_times_out_within_timeout(working_adapter, server):
    started = time.monotonic()
    with pytest.raises(HttpTimeoutError):
        working_adapter.request("GET", f"{server}/hang", timeout=0.5)
    assert time.monotonic() - started < 0.5 + 1.5


def test_refused_connection_is_retryable(working_adapter):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HttpConnectionError):
        working_adapter.request("GET", f"http://127.0.0.1:{port}/", timeout=2.0)


def test_connections_are_reused_across_calls(working_adapter, server):
    for _ in range(5):
        assert working_adapter.request("GET", f"{server}/echo", timeout=5.0).status == 200
