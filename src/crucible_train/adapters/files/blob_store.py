"""Filesystem blob store (adapter layer, local filesystem via ``os``).

Each key maps to a file under an absolute root directory. Writes are atomic and durable:
the bytes go to a uniquely named temp file in the target directory, which is flushed,
fsynced and renamed over the target with :func:`os.replace`, and the directory is fsynced
so the rename itself survives a crash. Readers therefore see the old blob or the whole new
one, never a torn write. Keys are validated by the rules every blob store shares, and a
key whose resolved path leaves the root (through a symlink) is refused.
"""

from __future__ import annotations

import contextlib
import os
import secrets

from crucible_train.adapters._blob_keys import (
    RESERVED_SUFFIX,
    validate_blob_key,
    validate_blob_prefix,
)
from crucible_train.errors import (
    BlobNotFoundError,
    BlobPathError,
    BlobStoreError,
    ConfigurationError,
)
from crucible_train.ports.blob_store import BlobStore

__all__ = ["FilesBlobStore"]


def _fsync_directory(path: str) -> None:
    """Persist a directory's entries (new names, renames); best effort where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        # Windows cannot open directories; its rename durability works differently.
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some filesystems (network mounts) refuse fsync on directories.
        pass
    finally:
        os.close(fd)


def _is_within(path: str, root: str) -> bool:
    return path == root or os.path.commonpath((path, root)) == root


class FilesBlobStore(BlobStore):
    """Blobs as files under ``root``; thread- and process-safe, picklable.

    Args:
        root: absolute directory holding the blobs; created on the first ``put``.
            The container resolves relative paths from ``containers.yaml``, so a relative
            root here is a wiring bug and is refused.

    Raises:
        ConfigurationError: ``root`` is empty or not absolute.

    A key cannot be both a blob and a "directory" of other blobs (``a`` and ``a/b``),
    because a file cannot also be a directory; such a ``put`` raises ``BlobStoreError``.
    Deleting a blob leaves its (possibly empty) directories in place, which keeps
    concurrent ``put`` calls into the same directory safe.
    """

    def __init__(self, *, root: str) -> None:
        if not isinstance(root, str) or not root:
            raise ConfigurationError("FilesBlobStore root must be a non-empty absolute path")
        if not os.path.isabs(root):
            raise ConfigurationError(
                f"FilesBlobStore root {root!r} is relative; pass an absolute path "
                "(the container resolves blob_store paths against the config directory)"
            )
        self._root = os.path.normpath(root)

    @property
    def root(self) -> str:
        """The absolute directory holding the blobs."""
        return self._root

    def __repr__(self) -> str:
        return f"FilesBlobStore(root={self._root!r})"

    # --- paths -------------------------------------------------------------------------

    def _path(self, relative: str) -> str:
        """Filesystem path of a validated key or directory prefix, refusing symlink escapes."""
        path = os.path.join(self._root, *relative.split("/")) if relative else self._root
        root_real = os.path.realpath(self._root)
        if not _is_within(os.path.realpath(path), root_real):
            raise BlobPathError(
                f"blob key {relative!r} resolves outside the store root {self._root!r} "
                "(through a symbolic link); refusing to follow it"
            )
        return path

    def _make_directories(self, directory: str) -> None:
        """Create ``directory`` and missing parents, fsyncing each parent that gained one."""
        missing: list[str] = []
        current = directory
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                # Another writer created it first, or a blob file occupies the name.
                if not os.path.isdir(path):
                    raise
                continue
            _fsync_directory(os.path.dirname(path))

    # --- port --------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """Atomically store ``data`` under ``key``, replacing any previous blob.

        Raises:
            BlobPathError: ``key`` is unsafe or resolves outside the root.
            BlobStoreError: the data is not bytes-like or the filesystem refused the write.
        """
        validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BlobStoreError(f"blob {key!r}: data is a {type(data).__name__}; blobs are bytes")
        path = self._path(key)
        directory, name = os.path.split(path)
        try:
            self._make_directories(directory)
        except OSError as exc:
            raise BlobStoreError(
                f"cannot store blob {key!r}: cannot create its directory under {self._root!r} "
                f"({exc.strerror or exc}); is a parent key already a blob?"
            ) from exc
        # The temp file lives in the target directory so os.replace is a same-filesystem
        # rename (atomic); the reserved suffix keeps it out of list() and away from keys.
        temp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}{RESERVED_SUFFIX}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            raise BlobStoreError(
                f"cannot store blob {key!r} under {self._root!r}: {exc.strerror or exc}"
            ) from exc
        _fsync_directory(directory)

    def get(self, key: str) -> bytes:
        """The blob under ``key``.

        Raises:
            BlobPathError: ``key`` is unsafe or resolves outside the root.
            BlobNotFoundError: no blob has that key.
            BlobStoreError: the file exists but cannot be read.
        """
        validate_blob_key(key)
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise BlobNotFoundError(f"no blob under key {key!r} in {self._root!r}") from exc
        except OSError as exc:
            raise BlobStoreError(
                f"cannot read blob {key!r} from {self._root!r}: {exc.strerror or exc}"
            ) from exc

    def exists(self, key: str) -> bool:
        """Whether a blob has that key (``BlobPathError`` for an unsafe key)."""
        validate_blob_key(key)
        return os.path.isfile(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted; temp files of in-flight writes are skipped.

        Raises:
            BlobPathError: ``prefix`` is unsafe.
        """
        validate_blob_prefix(prefix)
        # Walk only the deepest directory the prefix names instead of the whole store.
        directory_key = prefix.rpartition("/")[0]
        start = self._path(directory_key)
        if not os.path.isdir(start):
            return []
        root_real = os.path.realpath(self._root)
        keys: list[str] = []
        for directory, _subdirs, files in os.walk(start):
            relative_dir = os.path.relpath(directory, self._root)
            for name in files:
                if name.endswith(RESERVED_SUFFIX):
                    continue
                relative = name if relative_dir == "." else os.path.join(relative_dir, name)
                key = relative.replace(os.sep, "/")
                if not key.startswith(prefix):
                    continue
                full = os.path.join(directory, name)
                if os.path.islink(full) and not _is_within(os.path.realpath(full), root_real):
                    continue
                keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove the blob under ``key``; a missing key is not an error.

        Raises:
            BlobPathError: ``key`` is unsafe or resolves outside the root.
            BlobStoreError: the file exists but cannot be removed.
        """
        validate_blob_key(key)
        path = self._path(key)
        if os.path.isdir(path) and not os.path.islink(path):
            # A directory of other blobs is not a blob; there is nothing to delete.
            return
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise BlobStoreError(
                f"cannot delete blob {key!r} from {self._root!r}: {exc.strerror or exc}"
            ) from exc
        _fsync_directory(os.path.dirname(path))
