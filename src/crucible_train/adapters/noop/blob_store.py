"""Noop blob store (adapter layer, in-process memory): a real store that forgets on exit.

Keeping blobs in a dict is the meaningful no-op for storage: code that writes then reads a
checkpoint manifest still works, and nothing touches the disk. Keys follow the same rules
as every other blob store (:mod:`crucible_train.adapters._blob_keys`).
"""

from __future__ import annotations

import threading
from typing import Any

from crucible_train.adapters._blob_keys import validate_blob_key, validate_blob_prefix
from crucible_train.errors import BlobNotFoundError, BlobStoreError
from crucible_train.ports.blob_store import BlobStore

__all__ = ["NoopBlobStore"]


class NoopBlobStore(BlobStore):
    """Blobs in a thread-safe in-memory dict.

    ``put`` is atomic because the dict entry is swapped under a lock. Pickling copies the
    current blobs, so an unpickled store starts with the same content and then diverges.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        """Store a copy of ``data`` under ``key``, replacing any previous blob.

        Raises:
            BlobPathError: ``key`` is not a safe relative path.
            BlobStoreError: ``data`` is not bytes-like.
        """
        validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BlobStoreError(f"blob {key!r}: data is a {type(data).__name__}; blobs are bytes")
        # bytes() copies mutable buffers so later changes by the caller cannot leak in.
        blob = bytes(data)
        with self._lock:
            self._blobs[key] = blob

    def get(self, key: str) -> bytes:
        """The blob under ``key``.

        Raises:
            BlobPathError: ``key`` is not a safe relative path.
            BlobNotFoundError: no blob has that key.
        """
        validate_blob_key(key)
        with self._lock:
            blob = self._blobs.get(key)
        if blob is None:
            raise BlobNotFoundError(f"no blob under key {key!r}")
        return blob

    def exists(self, key: str) -> bool:
        """Whether a blob has that key (``BlobPathError`` for an unsafe key)."""
        validate_blob_key(key)
        with self._lock:
            return key in self._blobs

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted (``BlobPathError`` for an unsafe prefix)."""
        validate_blob_prefix(prefix)
        with self._lock:
            keys = [key for key in self._blobs if key.startswith(prefix)]
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove the blob under ``key``; a missing key is not an error."""
        validate_blob_key(key)
        with self._lock:
            self._blobs.pop(key, None)

    def __len__(self) -> int:
        """Number of blobs held."""
        with self._lock:
            return len(self._blobs)

    def __repr__(self) -> str:
        return f"NoopBlobStore(<{len(self)} blobs in memory>)"

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"blobs": dict(self._blobs)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Locks do not pickle; each copy gets its own.
        self._lock = threading.Lock()
        self._blobs = dict(state["blobs"])
