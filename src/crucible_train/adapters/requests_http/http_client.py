"""HTTP client over a pooled ``requests.Session`` (adapter layer, ``requests``).

Every failure becomes a typed :class:`~crucible_train.errors.HttpClientError`:

* retryable (:class:`~crucible_train.errors.RetryableHttpError`): 408, 429
  (:class:`~crucible_train.errors.HttpRateLimitError`), every 5xx except 501, timeouts
  (:class:`~crucible_train.errors.HttpTimeoutError`) and failed or dropped connections
  (:class:`~crucible_train.errors.HttpConnectionError`);
* permanent (:class:`~crucible_train.errors.PermanentHttpError`): every other non-2xx
  answer (400, 401, 403, 404, 409, 410, 413, 422, 501, other 4xx, unfollowed 3xx), TLS
  certificate failures, and requests that cannot be sent (bad URL, body that is not JSON).

Errors carry ``status``, ``retry_after`` (``Retry-After`` as seconds or as an HTTP date,
in seconds from now, never negative; ``None`` when absent or unreadable) and ``body``
(the first 500 characters of the answer). Messages read
``POST https://host/path → 503 Service Unavailable: <server message>`` and never contain
credentials: user info, query strings and the values of credential headers and
parameters are removed, even when a server echoes them back.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import http
import http.cookiejar
import json as jsonlib
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
import requests.adapters
import requests.structures
import urllib3.exceptions

from crucible_train.errors import (
    ConfigurationError,
    HttpClientError,
    HttpConnectionError,
    HttpRateLimitError,
    HttpTimeoutError,
    PermanentHttpError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpClient, HttpResponse

__all__ = ["RequestsHttpClient", "parse_retry_after", "safe_url"]

BODY_CHARS = 500
"""How much of an error answer is kept in ``HttpClientError.body``."""

CONNECT_TIMEOUT_CAP = 10.0
"""Longest wait for a TCP/TLS connection, whatever the call's timeout (seconds)."""

_MESSAGE_CHARS = 200  # longest server message quoted in an error message
_ERROR_BODY_BYTES = 64 * 1024  # an error page is read only this far
_CHUNK_BYTES = 64 * 1024
_MIN_SECRET = 4  # shorter credential fragments are not scrubbed (they would mangle text)
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_CREDENTIAL_WORDS = ("auth", "token", "key", "secret", "password", "cookie", "session")


# --- helpers (public ones are used by tests and by other adapters' messages) ---------------


def safe_url(url: str) -> str:
    """``url`` without user info, query string or fragment: safe to print.

    Example:
        ``safe_url("https://u:pw@host:8443/a/b?token=x")`` is ``"https://host:8443/a/b"``.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    if not parts.scheme:
        return parts.path or "<invalid URL>"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header.

    Args:
        value: the header value: delta-seconds (``"120"``; decimals accepted) or an HTTP
            date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: the current Unix time (default: the clock); for tests.

    Returns:
        Seconds from now, at least 0 (a date in the past means "now"); ``None`` when the
        header is absent, empty, negative or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; RFC 2822 "-0000" parses as naive
        when = when.replace(tzinfo=datetime.UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _is_credential_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _CREDENTIAL_WORDS)


def _credential_values(
    url: str, headers: Mapping[str, str], params: Mapping[str, str] | None
) -> list[str]:
    """Every credential this request carries, to be scrubbed from what we print."""
    found: list[str] = []
    try:
        parts = urllib.parse.urlsplit(url)
        found += [parts.password or "", parts.username or "", parts.query]
        found += [value for _name, value in urllib.parse.parse_qsl(parts.query)]
    except ValueError:
        pass
    for name, value in headers.items():
        if not isinstance(value, str) or not _is_credential_name(name):
            continue
        found.append(value)
        scheme, _sep, credential = value.partition(" ")
        if credential:
            found.append(credential.strip())
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(credential.strip(), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    decoded = ""
                user, _colon, password = decoded.partition(":")
                found += [decoded, user, password]
    for name, value in (params or {}).items():
        if isinstance(value, str) and _is_credential_name(name):
            found.append(value)
    return sorted({v for v in found if len(v) >= _MIN_SECRET}, key=len, reverse=True)


def _scrubber(secrets: Iterable[str]) -> Callable[[str], str]:
    ordered = list(secrets)

    def scrub(text: str) -> str:
        for secret in ordered:
            text = text.replace(secret, "***")
        return text

    return scrub


def _one_line(text: str, limit: int = _MESSAGE_CHARS) -> str:
    collapsed = " ".join(text.split())
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 3] + "..."


def _server_message(body: str) -> str:
    """The human part of an error answer: a JSON ``message``/``error``/``detail``, or the text."""
    stripped = body.strip()
    if stripped.startswith("{"):
        try:
            parsed = jsonlib.loads(stripped)
        except ValueError:
            parsed = None
        found = _message_in(parsed)
        if found:
            return _one_line(found)
    return _one_line(stripped)


def _message_in(value: Any, depth: int = 0) -> str | None:
    if depth > 3:
        return None
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value:
        return _message_in(value[0], depth + 1)
    if isinstance(value, dict):
        for key in ("message", "error_description", "error", "detail", "errors", "title"):
            found = _message_in(value.get(key), depth + 1)
            if found:
                return found
    return None


def _error_class(status: int) -> type[HttpClientError]:
    if status == 429:
        return HttpRateLimitError
    if status == 408 or (500 <= status <= 599 and status != 501):
        return RetryableHttpError
    return PermanentHttpError


def _reason(status: int, given: str | None) -> str:
    if given:
        return given
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def _innermost(exc: BaseException) -> BaseException:
    """The urllib3 error inside a requests error (``MaxRetryError.reason`` included)."""
    inner: BaseException = exc
    for _ in range(4):
        nxt = inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        if isinstance(inner, urllib3.exceptions.MaxRetryError) and inner.reason is not None:
            nxt = inner.reason
        if nxt is None:
            break
        inner = nxt
    return inner


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Refuses every cookie, so the shared session holds no per-call state."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


class RequestsHttpClient(HttpClient):
    """Blocking HTTP over one pooled ``requests.Session``; thread-safe, not picklable.

    Args:
        pool_size: connections kept open per host (also the number of threads that can
            talk to one host without opening throw-away connections).
        default_timeout: seconds used when a call gives no ``timeout``.
        user_agent: the ``User-Agent`` header of every request.

    Raises:
        ConfigurationError: an argument is out of range.

    Timeouts: the connection must open within ``min(timeout, 10)`` seconds; the server
    may then stay silent for at most ``timeout`` seconds at a time, and the whole answer
    must have arrived ``timeout`` seconds after the call started (checked as the body
    streams in). The session keeps no cookies, retries nothing itself (callers decide,
    using the error types) and follows redirects.
    """

    def __init__(
        self,
        *,
        pool_size: int = 10,
        default_timeout: float = 30.0,
        user_agent: str = "crucible-train/0.2.0",
    ) -> None:
        problems: list[str] = []
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            problems.append(f"pool_size is {pool_size!r}; use a whole number >= 1")
        if not _valid_timeout(default_timeout):
            problems.append(f"default_timeout is {default_timeout!r}; use a finite number > 0")
        if not isinstance(user_agent, str) or not user_agent.strip():
            problems.append("user_agent must be a non-empty string")
        if problems:
            raise ConfigurationError(*(f"RequestsHttpClient: {p}" for p in problems))
        self._default_timeout = float(default_timeout)
        self._session = requests.Session()
        # max_retries=0: retrying is the caller's decision, made from the typed errors.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = user_agent
        # A shared cookie jar is mutable state every thread would write; API clients
        # authenticate with headers, so refuse cookies and keep calls independent.
        self._session.cookies.set_policy(_NoCookies())
        self._closed = False

    def __repr__(self) -> str:
        return f"RequestsHttpClient(default_timeout={self._default_timeout!r})"

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request and return the 2xx answer.

        Args:
            method: ``GET``, ``POST`` ... (case-insensitive).
            url: absolute ``http://`` or ``https://`` URL; user info in it becomes Basic
                authentication.
            headers: extra headers.
            json: a JSON-serialisable body (strict JSON: NaN and infinities refused);
                sets ``Content-Type: application/json`` unless given.
            data: a raw body (mutually exclusive with ``json``).
            params: query parameters, appended to the URL.
            timeout: seconds for the whole call (default: ``default_timeout``).

        Returns:
            The answer, with case-insensitive headers and the full body.

        Raises:
            HttpTimeoutError: no connection or no complete answer in time.
            HttpConnectionError: the connection failed or dropped.
            HttpRateLimitError: 429; ``retry_after`` set when the server said.
            RetryableHttpError: 408 or 5xx other than 501.
            PermanentHttpError: any other non-2xx answer, or the request cannot be sent.
        """
        verb = str(method).upper()
        shown = f"{verb} {safe_url(url)}"
        sent_headers = dict(headers or {})
        scrub = _scrubber(_credential_values(url, sent_headers, params))
        if self._closed:
            raise PermanentHttpError(f"{shown}: the HTTP client is closed")
        seconds = self._default_timeout if timeout is None else timeout
        if not _valid_timeout(seconds):
            raise PermanentHttpError(f"{shown}: timeout is {seconds!r}; use a finite number > 0")
        body = self._body(shown, json, data, sent_headers)
        deadline = time.monotonic() + float(seconds)
        try:
            with self._session.request(
                verb,
                url,
                headers=sent_headers,
                data=body,
                params=dict(params) if params else None,
                timeout=(min(float(seconds), CONNECT_TIMEOUT_CAP), float(seconds)),
                stream=True,
            ) as response:
                ok = 200 <= response.status_code <= 299
                content = self._read(
                    response, deadline, shown, limit=None if ok else _ERROR_BODY_BYTES
                )
                if ok:
                    return HttpResponse(
                        status=response.status_code,
                        headers=requests.structures.CaseInsensitiveDict(response.headers),
                        body=content,
                    )
                raise self._status_error(shown, response, content, scrub)
        except HttpClientError:
            raise
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise self._transport_error(shown, exc, float(seconds), scrub) from exc

    def close(self) -> None:
        """Close pooled connections; later requests raise ``PermanentHttpError``. Idempotent."""
        self._closed = True
        self._session.close()

    # --- internals ---------------------------------------------------------------------

    @staticmethod
    def _body(shown: str, json: Any, data: bytes | None, headers: dict[str, str]) -> bytes | None:
        if json is not None and data is not None:
            raise PermanentHttpError(f"{shown}: give either json or data as the body, not both")
        if json is None:
            return data
        try:
            encoded = jsonlib.dumps(json, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise PermanentHttpError(f"{shown}: the json body cannot be sent: {exc}") from exc
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return encoded.encode("utf-8")

    @staticmethod
    def _read(
        response: requests.Response, deadline: float, shown: str, *, limit: int | None
    ) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break  # enough of an error page; the connection is dropped, not reused
            if time.monotonic() > deadline:
                raise HttpTimeoutError(f"{shown}: the answer did not arrive completely in time")
        return b"".join(chunks)

    @staticmethod
    def _status_error(
        shown: str, response: requests.Response, content: bytes, scrub: Callable[[str], str]
    ) -> HttpClientError:
        status = response.status_code
        text = scrub(content.decode("utf-8", errors="replace"))
        message = f"{shown} → {status} {_reason(status, response.reason)}"
        server = _server_message(text)
        if server:
            message += f": {server}"
        error = _error_class(status)(message)
        error.status = status
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error.body = text[:BODY_CHARS]
        return error

    @staticmethod
    def _transport_error(
        shown: str, exc: BaseException, seconds: float, scrub: Callable[[str], str]
    ) -> HttpClientError:
        inner = _innermost(exc)
        detail = scrub(_one_line(str(inner) or type(inner).__name__))
        # urllib3's NewConnectionError (refused, unreachable) subclasses its
        # ConnectTimeoutError for historical reasons; it is a connection failure.
        refused = isinstance(inner, urllib3.exceptions.NewConnectionError)
        if isinstance(exc, requests.exceptions.ConnectTimeout) or (
            isinstance(inner, urllib3.exceptions.ConnectTimeoutError) and not refused
        ):
            return HttpTimeoutError(f"{shown}: could not connect within {seconds:g} s")
        if isinstance(exc, requests.exceptions.Timeout) or isinstance(
            inner, urllib3.exceptions.ReadTimeoutError | TimeoutError
        ):
            return HttpTimeoutError(f"{shown}: no answer within {seconds:g} s")
        if isinstance(exc, requests.exceptions.SSLError):
            # A certificate that does not verify will not verify on the next attempt.
            return PermanentHttpError(f"{shown}: TLS failed: {detail}")
        if isinstance(
            exc,
            requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError,
        ):
            return HttpConnectionError(f"{shown}: connection failed: {detail}")
        if isinstance(
            exc,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema
            | requests.exceptions.InvalidHeader
            | requests.exceptions.URLRequired
            | requests.exceptions.InvalidJSONError
            | requests.exceptions.TooManyRedirects,
        ):
            return PermanentHttpError(f"{shown}: invalid request: {detail}")
        return HttpConnectionError(f"{shown}: request failed: {detail}")


def _valid_timeout(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
