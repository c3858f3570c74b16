"""Port: a store of named byte blobs (checkpoints, manifests, long texts).

Keys are relative POSIX paths (``run/ckpt-000100/weights.safetensors``); absolute keys,
``..`` segments, empty segments and backslashes are refused with
:class:`~crucible_train.errors.BlobPathError`. A new adapter must guarantee: ``put`` is
atomic (a reader sees the old blob or the whole new one, never a half-written one, even
after a crash); ``get`` of a missing key raises
:class:`~crucible_train.errors.BlobNotFoundError`; ``delete`` of a missing key does
nothing; the store is picklable when it holds only settings (a root path, a bucket name).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["BlobStore"]


@runtime_checkable
class BlobStore(Protocol):
    """Reads and writes blobs by key. Thread-safe."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any previous blob atomically. Idempotent."""
        ...

    def get(self, key: str) -> bytes:
        """The blob under ``key``.

        Raises:
            BlobNotFoundError: no blob has that key.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob has that key."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob under ``key``; nothing happens when it does not exist."""
        ...
