"""The fake of the ResultsStore port: the eval results log held in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports import RESULTS_FORMAT_VERSION, ResultsStore

__all__ = ["FakeResultsStore"]


class FakeResultsStore(ResultsStore):
    """A results log in memory: the header and every appended chunk are attributes.

    ``header`` is ``None`` until :meth:`open_run` starts a log, then
    ``{"run_fingerprint": ..., "version": ...}``; ``chunks`` holds each non-empty append
    (records after a JSON round trip, as a file would give them back); ``opens`` records
    ``(fingerprint, resume, overwrite)`` per call.
    """

    def __init__(self, *, location: str = "memory://results") -> None:
        self.header: dict[str, Any] | None = None
        self.chunks: list[list[dict[str, Any]]] = []
        self.opens: list[tuple[str, bool, bool]] = []
        self._location = location
        self._open = False

    @property
    def location(self) -> str:
        return self._location

    @property
    def appended(self) -> list[dict[str, Any]]:
        """Every record stored, in order."""
        return [record for chunk in self.chunks for record in chunk]

    def open_run(self, fingerprint: str, *, resume: bool = False, overwrite: bool = False) -> None:
        self.opens.append((fingerprint, resume, overwrite))
        if self.header is not None and resume:
            found = self.header["run_fingerprint"]
            if found != fingerprint:
                raise ConfigurationError(
                    f"results file {self._location} was written by a different run "
                    f"(fingerprint {found}, expected {fingerprint}); use a new --out or "
                    "drop --resume"
                )
        elif self.header is not None and not overwrite:
            raise ConfigurationError(
                f"results file {self._location} already exists; pass --resume to continue "
                "it, or choose a new --out"
            )
        else:
            self.header = {"run_fingerprint": fingerprint, "version": RESULTS_FORMAT_VERSION}
            self.chunks = []
        self._open = True

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not self._open:
            raise ConfigurationError(f"{self._location} is not open; call open_run first")
        chunk: list[dict[str, Any]] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InvalidDataError(f"result record {index} is not a JSON object")
            try:
                # Encoded like the files adapter, so a lone surrogate fails here too.
                text = json.dumps(record, ensure_ascii=False, allow_nan=False)
                chunk.append(json.loads(text.encode()))
            except (TypeError, ValueError) as exc:
                raise InvalidDataError(f"result record {index} is not JSON: {exc}") from None
        if chunk:
            self.chunks.append(chunk)

    def records(self) -> Iterator[dict[str, Any]]:
        for record in self.appended:
            yield json.loads(json.dumps(record))
