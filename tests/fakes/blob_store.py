"""FakeBlobStore: blobs in a dict, with the adapters' key rules; records writes and deletes."""

from __future__ import annotations

import threading
from typing import Any

from crucible_train.adapters._blob_keys import validate_blob_key, validate_blob_prefix
from crucible_train.errors import BlobNotFoundError, BlobStoreError
from crucible_train.ports.blob_store import BlobStore


class FakeBlobStore(BlobStore):
    """A blob store in memory. Keys are checked by the same rules as the files store's;
    ``put`` is atomic (one lock). Picklable with its content.

    Records :attr:`blobs` (key → bytes), :attr:`puts` and :attr:`deletes` (keys, in order).
    """

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.deletes: list[str] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        """Stores a copy of ``data`` (bytes, bytearray or memoryview) under ``key``."""
        validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BlobStoreError(f"blob data must be bytes, got {type(data).__name__}")
        with self._lock:
            self.blobs[key] = bytes(data)
            self.puts.append(key)

    def get(self, key: str) -> bytes:
        """The blob under ``key``; ``BlobNotFoundError`` when there is none."""
        validate_blob_key(key)
        with self._lock:
            if key not in self.blobs:
                raise BlobNotFoundError(f"no blob under key {key!r}")
            return self.blobs[key]

    def exists(self, key: str) -> bool:
        """Whether a blob has that key."""
        validate_blob_key(key)
        with self._lock:
            return key in self.blobs

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        validate_blob_prefix(prefix)
        with self._lock:
            return sorted(key for key in self.blobs if key.startswith(prefix))

    def delete(self, key: str) -> None:
        """Removes the blob under ``key`` (nothing when there is none)."""
        validate_blob_key(key)
        with self._lock:
            self.blobs.pop(key, None)
            self.deletes.append(key)
