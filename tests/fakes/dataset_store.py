"""FakeDatasetStore: named sources of rows (or of JSONL text) in memory; records opens."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crucible_train.errors import DatasetFormatError, DatasetNotFoundError
from crucible_train.ports.dataset_store import DatasetRecord, DatasetStore

Source = Sequence[Mapping[str, Any]] | str | bytes
"""Rows (line ``i`` is row ``i``), or the text of a JSONL file (blank lines skipped)."""


class FakeDatasetStore(DatasetStore):
    """Serves in-memory sources by name, lazily, with the files store's errors.

    Args:
        sources: source name → rows or JSONL text (more with :meth:`add_source`).

    Records :attr:`opened`: each source name iterated.
    """

    def __init__(self, sources: Mapping[str, Source] | None = None) -> None:
        self.sources: dict[str, Source] = dict(sources or {})
        self.opened: list[str] = []

    def add_source(self, name: str, content: Source) -> str:
        """Makes ``content`` available as ``name``; returns ``name``."""
        self.sources[name] = content
        return name

    def iter_records(self, source: str) -> Iterator[DatasetRecord]:
        """Every record of ``source`` in order, each with its 1-based line.

        Raises:
            DatasetNotFoundError: no source has that name (at the first ``next``).
            DatasetFormatError: a JSONL line is not a JSON object, or not UTF-8 (when the
                iteration reaches it).
        """
        self.opened.append(source)
        if source not in self.sources:
            raise DatasetNotFoundError(f"{source}: no such dataset in the fake store")
        content = self.sources[source]
        if isinstance(content, str | bytes):
            yield from _jsonl(source, content.encode() if isinstance(content, str) else content)
            return
        for line, row in enumerate(content, 1):
            yield DatasetRecord(source=source, line=line, data=row)


def _jsonl(source: str, content: bytes) -> Iterator[DatasetRecord]:
    for line, raw in enumerate(content.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetFormatError(f"{source}:{line}: not UTF-8 ({exc.reason})") from exc
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatasetFormatError(f"{source}:{line}: not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise DatasetFormatError(
                f"{source}:{line}: expected a JSON object, got {type(data).__name__}"
            )
        yield DatasetRecord(source=source, line=line, data=data)
