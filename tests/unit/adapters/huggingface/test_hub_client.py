"""Unit tests for HuggingFaceHubClient against a real (tiny, local) hub and no network.

There is no internet here, so the "online" tests run against ``FakeHub``: an
``http.server`` on 127.0.0.1 implementing the endpoints huggingface_hub 2.x calls:

* ``HEAD|GET /{repo}/resolve/{revision}/{path}``: file metadata (``X-Repo-Commit``,
  ``ETag``, ``Content-Length``) and body, used by ``hf_hub_download``;
* ``GET /api/models/{repo}[/revision/{revision}]``: repository info with its commit
  ``sha``, used by ``snapshot_download`` and by the adapter's probe;
* ``GET /api/models/{repo}/tree/{revision}?recursive=...``: the file listing, used by
  ``list_repo_files`` and ``snapshot_download``.

Errors carry the ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) that huggingface_hub maps to its exception types.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

pytest.importorskip("huggingface_hub")

from crucible_train.adapters.huggingface.hub_client import (
    DEFAULT_ENDPOINT,
    HuggingFaceHubClient,
)
from crucible_train.errors import (
    AdapterUnavailableError,
    ConfigurationError,
    HubClientError,
    HubUnavailableError,
)

REPO = "org/tiny-model"
SHA = "0123456789abcdef0123456789abcdef01234567"
FILES = {
    "config.json": b'{"hidden_size": 8, "num_hidden_layers": 2}\n',
    "tokenizer.json": b'{"model": {"vocab": {}}}\n',
    "weights/model.bin": bytes(range(256)) * 4,
    "README.md": b"# tiny model\n",
}
TOKEN = "hf_TopSecretToken0123456789abcdef"


# --- the fake hub -------------------------------------------------------------------------


class FakeHub:
    """A minimal Hugging Face Hub: one repository at one commit, with a request log."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self.fail_with: int | None = None
        handler = self._handler_class()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(head=False)

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def _send(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                # One request per connection, so stopping the server really stops serving.
                self.send_header("Connection", "close")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, payload: object) -> None:
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

            def _error(self, code: str) -> None:
                self._send(404, b'{"error": "not found"}', {"X-Error-Code": code})

            def _answer(self, head: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append((self.command, self.path, self.headers.get("authorization")))
                if hub.fail_with is not None:
                    self._send(hub.fail_with, b"unavailable")
                    return
                if path.startswith("/api/models/"):
                    self._api(path.removeprefix("/api/models/"))
                elif "/resolve/" in path:
                    self._resolve(path)
                else:
                    self._error("RepoNotFound")

            def _api(self, rest: str) -> None:
                if rest != REPO and not rest.startswith(REPO + "/"):
                    self._error("RepoNotFound")
                    return
                tail = rest.removeprefix(REPO).strip("/")
                kind, _, revision = tail.partition("/")
                if revision and revision not in ("main", SHA):
                    self._error("RevisionNotFound")
                elif kind in ("", "revision"):
                    self._json(
                        {"id": REPO, "sha": SHA, "siblings": [{"rfilename": f} for f in FILES]}
                    )
                elif kind == "tree":
                    self._json(
                        [
                            {
                                "type": "file",
                                "path": name,
                                "size": len(body),
                                "oid": hashlib.sha1(body).hexdigest(),
                            }
                            for name, body in FILES.items()
                        ]
                    )
                else:
                    self._error("RepoNotFound")

            def _resolve(self, path: str) -> None:
                repo, _, rest = path.lstrip("/").partition("/resolve/")
                revision, _, filename = rest.partition("/")
                if repo != REPO:
                    self._error("RepoNotFound")
                elif revision not in ("main", SHA):
                    self._error("RevisionNotFound")
                elif filename not in FILES:
                    self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": SHA})
                else:
                    body = FILES[filename]
                    etag = hashlib.sha256(body).hexdigest()
                    self._send(200, body, {"X-Repo-Commit": SHA, "ETag": f'"{etag}"'})

        return Handler


@pytest.fixture(autouse=True)
def clean_hf_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


@pytest.fixture
def cache(tmp_path: pathlib.Path) -> str:
    return str(tmp_path / "hf-cache")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CALLS: dict[str, Callable[[HuggingFaceHubClient], object]] = {
    "download": lambda c: c.download(REPO, "config.json"),
    "snapshot": lambda c: c.snapshot(REPO),
    "list_files": lambda c: c.list_files(REPO),
}


def full_text(exc: BaseException) -> str:
    """Everything a log would show for ``exc``: message, repr and the whole cause chain."""
    return repr(exc) + "".join(traceback.format_exception(exc))


# --- construction -------------------------------------------------------------------------


def test_missing_package_names_the_extra_and_the_noop_fallback(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(AdapterUnavailableError) as info:
        HuggingFaceHubClient()
    assert "pip install 'crucible-train[hub]'" in str(info.value)
    assert "hub.backend: noop" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cache_dir": "relative/cache"}, "absolute"),
        ({"endpoint": "ftp://hub.example"}, "http"),
        ({"endpoint": "hub.example.com"}, "http"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"offline": "yes"}, "offline"),
        ({"token": 123}, "token"),
    ],
)
def test_malformed_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        HuggingFaceHubClient(**kwargs)


def test_defaults_ignore_hf_environment_variables(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.invalid")
    client = HuggingFaceHubClient()
    assert client.endpoint == DEFAULT_ENDPOINT
    assert os.path.isabs(client.cache_dir)


def test_repr_shows_settings_but_never_the_token(cache):
    client = HuggingFaceHubClient(
        endpoint="https://user:pw@hub.example/", cache_dir=cache, token=TOKEN
    )
    text = repr(client)
    assert text == (
        f"HuggingFaceHubClient(endpoint='https://hub.example', cache_dir={cache!r}, "
        "offline=False, timeout=10.0, token=<set>)"
    )
    assert TOKEN not in str(client)
    assert "token=None" in repr(HuggingFaceHubClient(cache_dir=cache, token=""))


# --- (a) unreachable hub ------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(CALLS))
def test_closed_port_is_unavailable_within_seconds(cache, method):
    client = HuggingFaceHubClient(endpoint=f"http://127.0.0.1:{closed_port()}", cache_dir=cache)
    started = time.monotonic()
    with pytest.raises(HubUnavailableError) as info:
        CALLS[method](client)
    assert time.monotonic() - started < 3.0
    message = str(info.value)
    assert "cannot be used (ConnectError" in message
    assert "hub.endpoint" in message
    assert "pre-populate the cache" in message
    assert REPO in message
    assert info.value.__cause__ is not None


def test_silent_server_is_unavailable_after_the_timeout(cache):
    with socket.socket() as silent:
        # Accepts connections (the kernel completes the handshake) but never answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = HuggingFaceHubClient(
            endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}", cache_dir=cache, timeout=0.5
        )
        started = time.monotonic()
        with pytest.raises(HubUnavailableError, match="Timeout"):
            client.download(REPO, "config.json")
        assert time.monotonic() - started < 3.0


def test_server_errors_count_as_unavailable(hub, cache):
    hub.fail_with = 503
    with pytest.raises(HubUnavailableError, match="503"):
        HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache).download(REPO, "config.json")


# --- (b) offline with an empty cache ------------------------------------------------------


@pytest.mark.parametrize("method", sorted(CALLS))
def test_offline_with_empty_cache_is_unavailable_without_requests(hub, cache, method):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache, offline=True)
    with pytest.raises(HubUnavailableError) as info:
        CALLS[method](client)
    assert "offline (offline=True)" in str(info.value)
    assert "pre-populate the cache" in str(info.value)
    assert hub.requests == []


def test_hf_hub_offline_environment_variable_means_offline(hub, cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE=1"):
        client.download(REPO, "config.json")
    assert hub.requests == []


# --- (c) real downloads from the fake hub -------------------------------------------------


def test_download_returns_the_cached_file(hub, cache):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    path = client.download(REPO, "config.json")
    assert path.read_bytes() == FILES["config.json"]
    assert str(path).startswith(cache)
    assert path.parts[-3:] == ("snapshots", SHA, "config.json")


def test_download_of_a_nested_file(hub, cache):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    assert client.download(REPO, "weights/model.bin").read_bytes() == FILES["weights/model.bin"]


def test_list_files(hub, cache):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    assert client.list_files(REPO) == sorted(FILES)
    assert client.list_files(REPO, revision=SHA) == sorted(FILES)


def test_snapshot_downloads_every_file(hub, cache):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    folder = client.snapshot(REPO)
    assert folder.name == SHA
    for name, body in FILES.items():
        assert (folder / name).read_bytes() == body


def test_snapshot_honours_allow_patterns(hub, cache):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    folder = client.snapshot(REPO, allow_patterns=["*.json"])
    got = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert got == ["config.json", "tokenizer.json"]
    assert client.snapshot(REPO, allow_patterns="README.md") == folder


def test_token_is_sent_explicitly(hub, cache):
    HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache, token=TOKEN).download(
        REPO, "config.json"
    )
    assert hub.requests
    assert {auth for _method, _path, auth in hub.requests} == {f"Bearer {TOKEN}"}


def test_no_token_means_no_authorization_even_with_hf_token_set(hub, cache, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")
    HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache).list_files(REPO)
    assert {auth for _method, _path, auth in hub.requests} == {None}


@pytest.mark.parametrize(
    ("call", "names"),
    [
        pytest.param(
            lambda c: c.download("org/missing", "config.json"),
            ["'org/missing'", "config.json"],
            id="download-missing-repo",
        ),
        pytest.param(
            lambda c: c.download(REPO, "missing.txt"),
            [f"'{REPO}'", "'missing.txt'", "no such file"],
            id="download-missing-file",
        ),
        pytest.param(
            lambda c: c.download(REPO, "config.json", revision="v9"),
            ["'v9'", f"'{REPO}'", "'config.json'"],
            id="download-missing-revision",
        ),
        pytest.param(
            lambda c: c.list_files("org/missing"),
            ["'org/missing'", "not found"],
            id="list-missing-repo",
        ),
        pytest.param(
            lambda c: c.snapshot(REPO, revision="v9"),
            ["revision 'v9'", f"'{REPO}'"],
            id="snapshot-missing-revision",
        ),
        pytest.param(
            lambda c: c.download("not a valid id!", "x"),
            ["'not a valid id!'"],
            id="invalid-repo-id",
        ),
    ],
)
def test_missing_things_are_client_errors_naming_them(hub, cache, call, names):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    with pytest.raises(HubClientError) as info:
        call(client)
    assert not isinstance(info.value, HubUnavailableError)
    for name in names:
        assert name in str(info.value)
    assert info.value.__cause__ is not None


# --- (d) the cache keeps working without the hub ------------------------------------------


def test_offline_client_returns_the_cached_file_without_requests(hub, cache):
    online = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    path = online.download(REPO, "config.json")
    seen = len(hub.requests)
    offline = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache, offline=True)
    assert offline.download(REPO, "config.json") == path
    assert len(hub.requests) == seen


def test_unreachable_hub_falls_back_to_the_cache(hub, cache):
    path = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache).download(
        REPO, "config.json"
    )
    hub.stop()
    dead = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    started = time.monotonic()
    assert dead.download(REPO, "config.json") == path
    with pytest.raises(HubUnavailableError, match=r"README\.md"):
        dead.download(REPO, "README.md")
    assert time.monotonic() - started < 3.0


def test_offline_snapshot_and_listing_come_from_the_cache(hub, cache):
    folder = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache).snapshot(REPO)
    seen = len(hub.requests)
    offline = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache, offline=True)
    assert offline.snapshot(REPO) == folder
    assert offline.list_files(REPO) == sorted(FILES)
    assert offline.download(REPO, "weights/model.bin").read_bytes() == FILES["weights/model.bin"]
    assert len(hub.requests) == seen


def test_offline_listing_needs_a_snapshot(hub, cache):
    HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache).download(REPO, "config.json")
    offline = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache, offline=True)
    with pytest.raises(HubUnavailableError, match="repository 'org/tiny-model'"):
        offline.list_files(REPO)


def test_pinned_commit_in_cache_needs_no_request(hub, cache):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    path = client.download(REPO, "config.json")
    seen = len(hub.requests)
    assert client.download(REPO, "config.json", revision=SHA) == path
    assert len(hub.requests) == seen


def test_server_errors_fall_back_to_the_cache(hub, cache):
    client = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache)
    path = client.download(REPO, "config.json")
    hub.fail_with = 502
    assert client.download(REPO, "config.json") == path


# --- the token stays secret ---------------------------------------------------------------


def test_token_never_appears_in_any_error(hub, cache):
    dead_endpoint = f"http://127.0.0.1:{closed_port()}"
    online = HuggingFaceHubClient(endpoint=hub.endpoint, cache_dir=cache, token=TOKEN)
    dead = HuggingFaceHubClient(endpoint=dead_endpoint, cache_dir=cache, token=TOKEN)
    offline = HuggingFaceHubClient(
        endpoint=hub.endpoint, cache_dir=cache, token=TOKEN, offline=True
    )
    failures = [
        lambda: online.download("org/missing", "config.json"),
        lambda: online.download(REPO, "missing.txt"),
        lambda: online.snapshot(REPO, revision="nope"),
        lambda: online.list_files("org/missing"),
        lambda: online.download("bad id!", "x"),
        lambda: dead.download(REPO, "config.json"),
        lambda: dead.snapshot(REPO),
        lambda: dead.list_files(REPO),
        lambda: offline.download(REPO, "config.json"),
        lambda: offline.list_files(REPO),
    ]
    for failure in failures:
        with pytest.raises(HubClientError) as info:
            failure()
        assert TOKEN not in full_text(info.value)
    for client in (online, dead, offline):
        assert TOKEN not in repr(client)
        assert TOKEN not in str(client)
