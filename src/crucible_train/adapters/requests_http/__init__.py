"""HTTP client adapter over ``requests`` (adapter layer): pooled, typed errors, no secrets."""

from __future__ import annotations

from crucible_train.adapters.requests_http.http_client import RequestsHttpClient

__all__ = ["RequestsHttpClient"]
