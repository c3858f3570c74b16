"""Atomic directory writes and file digests for the local PyTorch engine's checkpoints."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_directory", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_path(path: Path) -> None:
    # Directories are opened read-only to fsync their entries (POSIX); Windows cannot.
    flags = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if path.is_dir() else os.O_RDONLY
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_directory(destination: Path) -> Iterator[Path]:
    """Write a directory so that readers see either the old one or the complete new one.

    Yields a fresh hidden directory next to ``destination``; when the block ends without
    an error its files are flushed to disk and it is renamed onto ``destination``. An
    existing ``destination`` is first renamed aside and deleted afterwards (a directory
    cannot be renamed onto a non-empty one), so a crash between those two renames leaves
    the previous version as ``.<name>.old-<id>`` next to it. On error the temporary
    directory is removed and ``destination`` is untouched.

    Args:
        destination: the directory to create or replace; its parent is created.

    Yields:
        The temporary directory to write into.
    """
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    temporary = parent / f".{destination.name}.tmp-{uuid.uuid4().hex[:12]}"
    temporary.mkdir()
    try:
        yield temporary
        for path in sorted(temporary.rglob("*")):
            if path.is_file():
                _fsync_path(path)
        _fsync_path(temporary)
        if destination.exists():
            retired = parent / f".{destination.name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(destination, retired)
            os.replace(temporary, destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temporary, destination)
        _fsync_path(parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
