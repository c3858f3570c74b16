"""FakeHttpClient: requests answered by in-memory routes, with the port's typed errors."""

from __future__ import annotations

import json as jsonlib
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from crucible_train.adapters.requests_http.http_client import parse_retry_after
from crucible_train.errors import (
    HttpClientError,
    HttpConnectionError,
    HttpRateLimitError,
    PermanentHttpError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpClient, HttpResponse


@attrs.frozen(kw_only=True)
class FakeHttpRequest:
    """One request as a route sees it (and :attr:`FakeHttpClient.requests` records it)."""

    method: str
    url: str
    path: str  # path and query string, as a server sees it
    headers: Mapping[str, str]
    body: bytes | None
    timeout: float

    def json(self) -> Any:
        """The body parsed as JSON (``None`` without a body)."""
        return None if not self.body else jsonlib.loads(self.body)


Route = Callable[[FakeHttpRequest], HttpResponse]
"""Answers a request with any status; it may raise an ``HttpClientError`` (a timeout)."""


class FakeHttpClient(HttpClient):
    """An HTTP client whose servers are functions.

    Args:
        routes: origin (``scheme://host:port``) → the route answering every request to
            it; a request to any other origin fails as a refused connection.

    A non-2xx answer becomes the port's typed error: ``RetryableHttpError`` for 408,
    429 (``HttpRateLimitError``) and 5xx except 501, ``PermanentHttpError`` otherwise, with
    ``status``, ``retry_after`` (from ``Retry-After``) and the start of the body. Response
    header names come back lower-case. Records :attr:`requests` and :attr:`closes`.
    """

    def __init__(self, routes: Mapping[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[FakeHttpRequest] = []
        self.closes = 0

    def serve(self, origin: str, route: Route) -> str:
        """Adds (or replaces) the route of ``origin``; returns ``origin``."""
        self.routes[origin.rstrip("/")] = route
        return origin

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> HttpResponse:
        """Sends the request to its origin's route; see the class for the errors."""
        parts = urllib.parse.urlsplit(url)
        query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params or {})) if q)
        body = jsonlib.dumps(json).encode("utf-8") if json is not None else data
        request = FakeHttpRequest(
            method=method.upper(),
            url=urllib.parse.urlunsplit(parts._replace(query=query)),
            path=(parts.path or "/") + (f"?{query}" if query else ""),
            headers={k.lower(): v for k, v in (headers or {}).items()},
            body=body,
            timeout=timeout,
        )
        self.requests.append(request)
        origin = f"{parts.scheme}://{parts.netloc}"
        route = self.routes.get(origin)
        if route is None:
            raise HttpConnectionError(f"{method} {origin}: connection refused (no route)")
        answer = route(request)
        response = HttpResponse(
            status=answer.status,
            headers={k.lower(): v for k, v in answer.headers.items()},
            body=answer.body,
        )
        if 200 <= response.status < 300:
            return response
        raise _status_error(request, response)

    def close(self) -> None:
        """Counts the call."""
        self.closes += 1


def _status_error(request: FakeHttpRequest, response: HttpResponse) -> HttpClientError:
    status = response.status
    if status == 429:
        cls: type[HttpClientError] = HttpRateLimitError
    elif status == 408 or (status >= 500 and status != 501):
        cls = RetryableHttpError
    else:
        cls = PermanentHttpError
    body = response.text[:500]
    error = cls(f"{request.method} {request.url}: HTTP {status}: {body}")
    error.status = status
    error.retry_after = parse_retry_after(response.headers.get("retry-after"))
    error.body = body
    return error
