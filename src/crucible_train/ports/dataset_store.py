"""Port: streams dataset records (JSON objects) from a named source.

A new adapter must guarantee: records are yielded lazily (memory does not grow with the
dataset), in file order, each with the 1-based line it came from; a source that does not
exist raises :class:`~crucible_train.errors.DatasetNotFoundError`; a malformed record
raises :class:`~crucible_train.errors.DatasetFormatError` naming the source and line when
the iteration reaches it (records before it have already been yielded).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["DatasetRecord", "DatasetStore"]


@attrs.frozen(kw_only=True)
class DatasetRecord:
    """One record and where it came from, so later validation can name the line."""

    source: str
    line: int
    data: Mapping[str, Any]


@runtime_checkable
class DatasetStore(Protocol):
    """Opens datasets by name (a path or an adapter-specific identifier)."""

    def iter_records(self, source: str) -> Iterator[DatasetRecord]:
        """Yield every record of ``source`` in order (blank lines are skipped)."""
        ...
