"""Port: streams dataset records (JSON objects) from a named source.

A new adapter must guarantee: records are yielded lazily where the format allows (memory
does not grow with the dataset), in file order, each with the 1-based line (text formats:
JSONL, CSV) or row (JSON arrays, Parquet, Hugging Face datasets) it came from; a source
that does not exist raises :class:`~crucible_train.errors.DatasetNotFoundError`; a malformed record
raises :class:`~crucible_train.errors.DatasetFormatError` naming the source and line/row when
the iteration reaches it (records before it have already been yielded).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

__all__ = ["DatasetRecord", "DatasetStore"]


@attrs.frozen(kw_only=True)
class DatasetRecord:
    """One record and where it came from, so later validation can name the line or row.

    Attributes:
        source: the resolved file or directory the record was read from.
        line: the 1-based line (``unit="line"``) or row (``unit="row"``) number.
        data: the record's columns.
        unit: whether ``line`` counts text lines or rows (formats without lines).
    """

    source: str
    line: int
    data: Mapping[str, Any]
    unit: Literal["line", "row"] = "line"

    @property
    def where(self) -> str:
        """``path:LINE`` for a line, ``path row N`` for a row: the prefix of error messages."""
        if self.unit == "line":
            return f"{self.source}:{self.line}"
        return f"{self.source} row {self.line}"


@runtime_checkable
class DatasetStore(Protocol):
    """Opens datasets by name (a path or an adapter-specific identifier)."""

    def iter_records(self, source: str) -> Iterator[DatasetRecord]:
        """Yield every record of ``source`` in order (blank lines are skipped)."""
        ...
