"""Port: a model hub (downloads of model files, tokenizers and configs).

A new adapter must guarantee: downloads land in a local cache and return local paths;
an unreachable hub (offline machine, ``HF_HUB_OFFLINE=1``) raises
:class:`~crucible_train.errors.HubUnavailableError` promptly instead of hanging; a missing
repository or file raises :class:`~crucible_train.errors.HubClientError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["HubClient"]


@runtime_checkable
class HubClient(Protocol):
    """Fetches files from a model hub."""

    def download(self, repo_id: str, filename: str, *, revision: str | None = None) -> Path:
        """Local path of ``filename`` from ``repo_id`` (downloaded when not cached)."""
        ...

    def snapshot(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        allow_patterns: Sequence[str] | None = None,
    ) -> Path:
        """Local directory holding the repository's files (those matching ``allow_patterns``)."""
        ...

    def list_files(self, repo_id: str, *, revision: str | None = None) -> list[str]:
        """Paths of every file in the repository."""
        ...
