"""A fake OpenAI-compatible server for tests and benchmarks.

Threaded ``http.server`` on 127.0.0.1 (random port). It answers
``POST /v1/chat/completions`` (the reply echoes the last message's content),
``POST /v1/completions`` (echoes the prompt) and ``GET /v1/models``, with ``usage``
counted in whitespace-separated words. ``max_tokens`` cuts the reply to that many words
(``finish_reason: "length"``); otherwise ``finish_reason`` is ``"stop"``. Requests
without a ``model`` or with an empty ``messages`` list get the 400 an OpenAI server gives.
Every request is recorded (method, path, headers, parsed body).

Configuration and fault injection:

* ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` get 401;
* ``latency``: seconds every answer is held back (slow server, timeouts);
* ``reply``: a function from the parsed request body to the reply text (default: echo);
* ``fail(status, count=1, retry_after=None, message=...)``: the next ``count`` requests
  are answered ``status`` with an OpenAI-style error body (and ``Retry-After``);
* ``garble(count=1, body=b"<html>")``: the next ``count`` answers are 200 with ``body``
  (not JSON, or JSON without ``choices``).

Use as a context manager (or ``start()`` / ``stop()``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "sk-fake-0123456789abcdef"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) closes its socket while a slow answer is
        # pending; that is the scenario under test, not a server fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def echo_reply(body: dict[str, Any]) -> str:
    """The default reply: ``echo: `` and the last message's content (or the prompt)."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        return f"echo: {messages[-1].get('content', '')}"
    return f"echo: {body.get('prompt', '')}"


class FakeOpenAI:
    """The server and its request log.

    Args:
        api_key: the only key accepted; ``None`` accepts any request (a local server).
        latency: seconds each answer is delayed.
        reply: builds the reply text from the request body.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency: float = 0.0,
        reply: Callable[[dict[str, Any]], str] = echo_reply,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._failures: list[tuple[int, float | None, str]] = []
        self._garbled: list[bytes] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API root, ``http://127.0.0.1:<port>/v1``."""
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        """Serve in a background thread."""
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        message: str = "injected failure",
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and an OpenAI error body."""
        with self.lock:
            self._failures.extend([(status, retry_after, message)] * count)

    def garble(self, count: int = 1, body: bytes = b"<html>not json</html>") -> None:
        """Answer the next ``count`` requests 200 with ``body`` instead of a completion."""
        with self.lock:
            self._garbled.extend([body] * count)

    # --- request handling (called from the handler threads) ------------------------------

    def _answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            failure = self._failures.pop(0) if self._failures else None
            garbled = self._garbled.pop(0) if self._garbled else None
        if self.latency:
            time.sleep(self.latency)
        if failure is not None:
            status, retry_after, message = failure
            extra = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            return _error(status, message, extra)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.")
        if garbled is not None:
            return 200, {"Content-Type": "application/json"}, garbled
        if method == "GET" and path == "/v1/models":
            return _json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            return _error(404, f"no route {method} {path}")
        if not isinstance(body, dict):
            return _error(400, "the request body is not valid JSON")
        if not body.get("model"):
            return _error(400, "you must provide a model parameter")
        chat = path == "/v1/chat/completions"
        if chat and (not isinstance(body.get("messages"), list) or not body["messages"]):
            return _error(400, "'messages' must be a non-empty array")
        words = self.reply(body).split(" ")
        finish = "stop"
        limit = body.get("max_tokens")
        if isinstance(limit, int) and len(words) > limit:
            words, finish = words[:limit], "length"
        text = " ".join(words)
        prompt = json.dumps(body.get("messages")) if chat else str(body.get("prompt", ""))
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return _json(
            200,
            {
                "id": f"cmpl-{len(self.requests)}",
                "object": "chat.completion" if chat else "text_completion",
                "model": body["model"],
                "choices": [choice],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(words),
                    "total_tokens": len(prompt.split()) + len(words),
                },
            },
        )


def _json(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def _error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    payload = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return _json(status, payload, headers)


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra, payload = server._answer(self.command, self.path, headers, raw)
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler
