"""Blob key rules shared by every blob store adapter (adapter layer, pure Python).

One function decides whether a key is safe, so the in-memory and filesystem stores accept
and refuse exactly the same keys (see :mod:`crucible_train.ports.blob_store`).
"""

from __future__ import annotations

from typing import Final

from crucible_train.errors import BlobPathError

__all__ = ["RESERVED_SUFFIX", "validate_blob_key", "validate_blob_prefix"]

RESERVED_SUFFIX: Final = ".crucible-tmp"
"""Suffix of the temporary files a store writes before renaming them into place.

Keys whose segments end with it are refused so that a user blob can never be mistaken
for (and hidden as) an in-flight temporary file.
"""


def _segment_problem(segment: str) -> str | None:
    if segment == "":
        return "has an empty segment ('//', or a leading or trailing '/')"
    if segment in (".", ".."):
        return f"has a {segment!r} segment; keys must not navigate directories"
    if segment.endswith(RESERVED_SUFFIX):
        return f"has a segment ending in {RESERVED_SUFFIX!r}, which is reserved for temp files"
    return None


def _character_problem(text: str) -> str | None:
    if "\\" in text:
        return "contains a backslash; use '/' to separate segments"
    if "\x00" in text:
        return "contains a NUL character"
    if text.startswith("/"):
        return "is absolute; keys are relative paths such as 'run/ckpt-000100/weights'"
    return None


def validate_blob_key(key: str) -> str:
    """Check that ``key`` is a safe relative POSIX path and return it unchanged.

    Args:
        key: a blob key such as ``run/ckpt-000100/weights.safetensors``.

    Returns:
        ``key``.

    Raises:
        BlobPathError: the key is not a string, is empty or absolute, contains a backslash
            or NUL, has an empty, ``.`` or ``..`` segment, or a reserved temp-file suffix.
    """
    if not isinstance(key, str):
        raise BlobPathError(f"blob key {key!r} is a {type(key).__name__}; keys are strings")
    if key == "":
        raise BlobPathError("blob key is empty")
    problem = _character_problem(key)
    if problem is None:
        problem = next(
            (p for p in map(_segment_problem, key.split("/")) if p is not None),
            None,
        )
    if problem is not None:
        raise BlobPathError(f"blob key {key!r} {problem}")
    return key


def validate_blob_prefix(prefix: str) -> str:
    """Check a ``list`` prefix: a key's leading part, possibly ending mid-segment or in ``/``.

    Args:
        prefix: ``""`` (every key), ``"run/"`` or ``"run/ckpt-0"``.

    Returns:
        ``prefix``.

    Raises:
        BlobPathError: the prefix could never match a valid key (absolute, backslash,
            NUL, or an empty, ``.`` or ``..`` segment before its last ``/``).
    """
    if not isinstance(prefix, str):
        raise BlobPathError(f"blob prefix {prefix!r} is a {type(prefix).__name__}; use a string")
    problem = _character_problem(prefix)
    if problem is None:
        # The last segment may be partial ("ckpt-0") or empty (trailing "/"); only the
        # complete segments before it must be valid key segments.
        complete = prefix.split("/")[:-1]
        problem = next(
            (p for p in map(_segment_problem, complete) if p is not None),
            None,
        )
    if problem is not None:
        raise BlobPathError(f"blob prefix {prefix!r} {problem}")
    return prefix
