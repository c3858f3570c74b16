"""Port: a blocking HTTP client with typed errors.

A new adapter must guarantee: every call ends within ``timeout`` seconds (connect plus
read); non-2xx answers raise a :class:`~crucible_train.errors.HttpClientError` subclass
(:class:`~crucible_train.errors.RetryableHttpError` for 429, 5xx except 501, timeouts and
dropped connections; :class:`~crucible_train.errors.PermanentHttpError` otherwise) with
``status``, ``retry_after`` and the start of the body set; connection pooling; thread-safe
calls; credentials never in error messages.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["HttpClient", "HttpResponse"]


@attrs.frozen(kw_only=True)
class HttpResponse:
    """A successful (2xx) answer."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not JSON)."""
        return jsonlib.loads(self.body)


@runtime_checkable
class HttpClient(Protocol):
    """Sends HTTP requests. Thread-safe; not picklable (it owns a connection pool)."""

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
        """Send one request and return the 2xx answer.

        Args:
            method: ``GET``, ``POST`` ...
            url: absolute URL.
            headers: extra headers.
            json: a JSON-serialisable body (mutually exclusive with ``data``).
            data: a raw body.
            params: query parameters.
            timeout: seconds for connect plus read.

        Raises:
            RetryableHttpError: safe to retry after ``retry_after`` or a back-off.
            PermanentHttpError: retrying will not help; the message holds the server's.
        """
        ...

    def close(self) -> None:
        """Release pooled connections; idempotent."""
        ...
