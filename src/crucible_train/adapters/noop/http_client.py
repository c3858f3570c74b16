"""Noop HTTP client (adapter layer, no technology): refuses to send requests.

``request`` raises :class:`~crucible_train.errors.BackendNotConfiguredError` naming
``http.backend``; ``close`` is accepted because releasing nothing is a valid no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.http import HttpClient, HttpResponse

__all__ = ["NoopHttpClient"]


class NoopHttpClient(HttpClient):
    """An HTTP client for configurations that never call the network."""

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
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured("http", "request")

    def close(self) -> None:
        """Nothing to release. Idempotent."""
