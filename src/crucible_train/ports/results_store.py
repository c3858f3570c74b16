"""Port: where a batch evaluation keeps its results, so a crashed run can resume.

A results store holds one **append-only, durable, ordered log of JSON records** (one record
per evaluated sample, written by :func:`~crucible_train.core.evaluation.persist_results`),
headed by the **run fingerprint** of the run that started it and
:data:`RESULTS_FORMAT_VERSION`. The fingerprint lets a later run refuse to resume a log
that a different run (other scorers, samples or model) wrote.

Life of a store: :meth:`ResultsStore.open_run` starts a new log, continues one (resume) or
replaces one (overwrite); :meth:`ResultsStore.append` then adds chunks of records;
:meth:`ResultsStore.records` streams the records back at any time.

A new adapter must guarantee:

* ``open_run`` on a store holding a log: with ``resume`` the log's fingerprint must equal
  the one given (else :class:`~crucible_train.errors.ConfigurationError` saying "was
  written by a different run (fingerprint F, expected G)"), and the records stay; with
  ``overwrite`` the log is replaced by an empty one; with neither it raises
  ``ConfigurationError`` saying "already exists; pass --resume to continue it, or choose
  a new --out". A store holding something that is not such a log raises
  ``ConfigurationError`` on resume ("has no crucible-train header; choose a new --out",
  or "has a malformed header"). On an empty store every mode starts a new log;
* ``append`` is durable: when it returns, the records survive a crash of the process or
  the machine. A chunk need not be all-or-nothing, but a record torn by a crash is never
  read back as a record, and the next ``open_run(resume=True)`` removes it;
* ``records`` yields every complete record in the order appended, equal to what was
  appended after a JSON round trip (a snapshot: changing a record after ``append`` does not
  change the store); it streams (flat memory over millions of records); an empty store
  yields nothing. It never changes the store.

Records are JSON objects: string keys; strings, finite numbers, booleans, ``None``, lists
and objects as values. Calls come from one thread; a store serves one results log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["RESULTS_FORMAT_VERSION", "ResultsStore"]

RESULTS_FORMAT_VERSION = 1
"""The version of the results log a store starts (kept in its header)."""


@runtime_checkable
class ResultsStore(Protocol):
    """One results log: a fingerprint header and records appended in order."""

    @property
    def location(self) -> str:
        """Where the log lives, as shown in messages (the results file for files)."""
        ...

    def open_run(self, fingerprint: str, *, resume: bool = False, overwrite: bool = False) -> None:
        """Get ready to append the records of the run identified by ``fingerprint``.

        Starts a new log (headed by ``fingerprint``) unless ``resume`` continues the one
        stored; repairs a tail torn by a crash when resuming.

        Raises:
            ConfigurationError: a log exists and neither ``resume`` nor ``overwrite`` is
                set; ``resume`` finds another run's fingerprint, or something that is
                not a results log.
        """
        ...

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Add ``records`` after the others, durably (an empty chunk adds nothing).

        Raises:
            ConfigurationError: ``open_run`` was not called first.
            InvalidDataError: a record is not a JSON object; nothing of the chunk is stored.
        """
        ...

    def records(self) -> Iterator[dict[str, Any]]:
        """Stream the complete records in the order appended (the header is not one).

        Raises:
            InvalidDataError: a stored record cannot be read (names where it is).
        """
        ...
