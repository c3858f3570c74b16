"""FakeHubClient: model repositories in memory, downloaded into a local cache directory."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path

from crucible_train.errors import HubClientError, HubUnavailableError
from crucible_train.ports.hub import HubClient


class FakeHubClient(HubClient):
    """A hub holding ``repos`` (repository id → file path → bytes).

    Args:
        cache_dir: where downloads land (``<cache_dir>/<repo>/<revision>/<file>``).
        repos: the repositories the hub serves.
        reachable: when false every call raises ``HubUnavailableError`` at once (an
            offline machine).

    Records :attr:`downloads` (``(repo_id, filename, revision)``), :attr:`snapshots` and
    :attr:`listings` (repository ids).
    """

    def __init__(
        self,
        *,
        cache_dir: str | Path,
        repos: Mapping[str, Mapping[str, bytes]] | None = None,
        reachable: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.repos = {repo: dict(files) for repo, files in (repos or {}).items()}
        self.reachable = reachable
        self.downloads: list[tuple[str, str, str | None]] = []
        self.snapshots: list[str] = []
        self.listings: list[str] = []

    def download(self, repo_id: str, filename: str, *, revision: str | None = None) -> Path:
        """The cached path of ``filename`` (written into the cache on first use)."""
        self.downloads.append((repo_id, filename, revision))
        files = self._repo(repo_id)
        if filename not in files:
            raise HubClientError(f"{repo_id}: no file {filename!r} in the repository")
        return self._cache(repo_id, revision, filename, files[filename])

    def snapshot(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        allow_patterns: Sequence[str] | None = None,
    ) -> Path:
        """The cache directory holding the files that match ``allow_patterns``."""
        self.snapshots.append(repo_id)
        files = self._repo(repo_id)
        for name, data in files.items():
            if allow_patterns is None or any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                self._cache(repo_id, revision, name, data)
        folder = self.cache_dir / repo_id / (revision or "main")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def list_files(self, repo_id: str, *, revision: str | None = None) -> list[str]:
        """Paths of the repository's files, sorted."""
        self.listings.append(repo_id)
        return sorted(self._repo(repo_id))

    def _repo(self, repo_id: str) -> dict[str, bytes]:
        if not self.reachable:
            raise HubUnavailableError(f"{repo_id}: the hub cannot be reached (offline)")
        if repo_id not in self.repos:
            raise HubClientError(f"{repo_id}: no such repository on the hub")
        return self.repos[repo_id]

    def _cache(self, repo_id: str, revision: str | None, name: str, data: bytes) -> Path:
        path = self.cache_dir / repo_id / (revision or "main") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path
