"""Noop hub client (adapter layer, no technology): never downloads anything.

Each call raises :class:`~crucible_train.errors.BackendNotConfiguredError` naming
``hub.backend``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.hub import HubClient

__all__ = ["NoopHubClient"]

_PORT = "hub"


class NoopHubClient(HubClient):
    """A hub client for configurations that never fetch model files."""

    def download(self, repo_id: str, filename: str, *, revision: str | None = None) -> Path:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "download")

    def snapshot(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        allow_patterns: Sequence[str] | None = None,
    ) -> Path:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "snapshot")

    def list_files(self, repo_id: str, *, revision: str | None = None) -> list[str]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "list_files")
