"""What ``crucible-train logs sync`` does (adapter layer): deliver what spools still hold.

When a run ends while the service is down, or the process dies, rows stay in the spool.
:func:`sync_run_dir` finds every spool under a run directory (``sink.json`` names its
sink kind), rebuilds the sink's transport with the class registered for that kind
(:class:`ResumableSink`, usually by subclassing :class:`SpoolingSink`), sends what the
spool holds, in order and exactly once, and marks the run finished with the exit code
given to ``close`` (or :data:`~crucible_train.adapters.delivery.constants.UNKNOWN_EXIT_CODE`,
"failed", when the process died before ``close``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from crucible_train.adapters.delivery.constants import (
    DEFAULT_MAX_ROWS_PER_REQUEST,
    DEFAULT_MIN_BACKOFF_S,
    SYNC_BURST,
    SYNC_MAX_BACKOFF_S,
    SYNC_RATE_PER_S,
    UNKNOWN_EXIT_CODE,
)
from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.spool import SpoolStatus, find_spools, spool_status
from crucible_train.adapters.delivery.transport import Transport
from crucible_train.errors import ConfigurationError
from crucible_train.ports.http import HttpClient

__all__ = [
    "ResumableSink",
    "SpoolResult",
    "SpoolingSink",
    "spool_syncer",
    "sync_run_dir",
    "sync_spool",
]

ResumeTransport = Callable[..., Transport]
"""A sink class's ``resume_transport(spool_dir, *, http, environ)``."""
SpoolSyncer = Callable[..., int]
"""``(spool_dir, *, http, environ, timeout, exit_code_if_unknown) -> rows left``."""


@runtime_checkable
class ResumableSink(Protocol):
    """What ``crucible-train logs sync`` needs from a sink class that uses a spool.

    The container registers sink classes; ``logs sync`` looks up the class by the
    ``kind`` in ``sink.json`` and calls :meth:`sync_spool`. Subclass
    :class:`SpoolingSink` and implement :meth:`resume_transport` to get it.
    """

    @classmethod
    def sync_spool(
        cls,
        spool_dir: Path,
        *,
        http: HttpClient,
        environ: Mapping[str, str],
        timeout: float,
        exit_code_if_unknown: int = ...,
    ) -> int:
        """Deliver what ``spool_dir`` holds and finish the run; return rows left."""
        ...

    @classmethod
    def resume_transport(
        cls, spool_dir: Path, *, http: HttpClient, environ: Mapping[str, str]
    ) -> Transport:
        """Rebuild the transport of the run whose spool is ``spool_dir``.

        Args:
            spool_dir: the spool (its ``sink.json`` holds the run's identity).
            http: the HTTP client to send with.
            environ: where to read the sink's secret (``WANDB_API_KEY`` ...).

        Raises:
            MissingSecretError: the secret is not set.
            ConfigurationError: ``sink.json`` is missing or unreadable.
        """
        ...


def sync_spool(
    spool_dir: Path,
    transport: Transport,
    *,
    timeout: float,
    exit_code_if_unknown: int = UNKNOWN_EXIT_CODE,
    rate_per_s: float = SYNC_RATE_PER_S,
    burst: int = SYNC_BURST,
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST,
    min_backoff_s: float = DEFAULT_MIN_BACKOFF_S,
    max_backoff_s: float = SYNC_MAX_BACKOFF_S,
    name: str | None = None,
) -> int:
    """Deliver what a spool holds (after a restart), then finish the run.

    Rows go in order, exactly as a live sender would send them; then the run is marked
    finished with the exit code recorded by ``close``, or ``exit_code_if_unknown`` (by
    default :data:`~crucible_train.adapters.delivery.constants.UNKNOWN_EXIT_CODE`,
    "failed") when the process died before ``close``. A spool whose run is already
    finished and holds nothing is left alone.

    Args:
        spool_dir: the spool directory.
        transport: rebuilt by the sink class's ``resume_transport``.
        timeout: seconds to spend at most.
        exit_code_if_unknown: the exit code to use when none was recorded.
        rate_per_s: sustained requests per second.
        burst: requests that may go back to back.
        max_rows_per_request: rows per request at most.
        min_backoff_s: first retry delay.
        max_backoff_s: longest retry delay.
        name: how log messages name the service (default: the spool's kind).

    Returns:
        Rows left in the spool (0 when everything was delivered).

    Raises:
        ConfigurationError: the spool is in use by another sender.
    """
    status = spool_status(spool_dir)
    if _nothing_to_do(status):
        return 0
    exit_code = status.exit_code if status.exit_code is not None else exit_code_if_unknown
    sender = ReliableSender(
        transport=transport,
        spool_dir=spool_dir,
        rate_per_s=rate_per_s,
        burst=burst,
        heartbeat_s=None,
        max_rows_per_request=max_rows_per_request,
        min_backoff_s=min_backoff_s,
        max_backoff_s=max_backoff_s,
        name=name or spool_dir.name,
    )
    return sender.close(exit_code, timeout)


def _nothing_to_do(status: SpoolStatus) -> bool:
    """No row is pending and the run is finished (or was never created)."""
    return status.pending == 0 and (status.finished or not status.started)


def _resume_and_sync(
    resume_transport: ResumeTransport,
    spool_dir: Path,
    *,
    http: HttpClient,
    environ: Mapping[str, str],
    timeout: float,
    exit_code_if_unknown: int,
    name: str | None,
) -> int:
    """Rebuild the transport only when there is something to send: no secret otherwise."""
    if _nothing_to_do(spool_status(spool_dir)):
        return 0
    transport = resume_transport(spool_dir, http=http, environ=environ)
    return sync_spool(
        spool_dir,
        transport,
        timeout=timeout,
        exit_code_if_unknown=exit_code_if_unknown,
        name=name,
    )


class SpoolingSink:
    """Base class of metrics sinks that deliver through a spool: ``logs sync`` support.

    A subclass sets :attr:`SINK_KIND` (its backend name and spool directory name) and
    implements :meth:`resume_transport`; :meth:`sync_spool` then works for it.
    """

    SINK_KIND: ClassVar[str] = ""

    @classmethod
    def resume_transport(
        cls, spool_dir: Path, *, http: HttpClient, environ: Mapping[str, str]
    ) -> Transport:
        """Rebuild the transport of the run spooled in ``spool_dir`` (see ResumableSink)."""
        raise NotImplementedError(f"{cls.__name__} does not implement resume_transport")

    @classmethod
    def sync_spool(
        cls,
        spool_dir: Path,
        *,
        http: HttpClient,
        environ: Mapping[str, str],
        timeout: float,
        exit_code_if_unknown: int = UNKNOWN_EXIT_CODE,
    ) -> int:
        """Deliver what ``spool_dir`` holds, then finish the run (``logs sync``).

        Nothing is built (and no secret is needed) when the spool holds nothing to do.

        Args:
            spool_dir: the spool directory.
            http: the HTTP client.
            environ: where the sink's secret is read.
            timeout: seconds to spend at most.
            exit_code_if_unknown: exit code when the process died before ``close``.

        Returns:
            Rows left in the spool.

        Raises:
            MissingSecretError: the sink's secret is not set.
            ConfigurationError: the spool is unreadable or in use.
        """
        return _resume_and_sync(
            cls.resume_transport,
            spool_dir,
            http=http,
            environ=environ,
            timeout=timeout,
            exit_code_if_unknown=exit_code_if_unknown,
            name=cls.SINK_KIND or None,
        )


@attrs.frozen(kw_only=True)
class SpoolResult:
    """What syncing one spool achieved.

    Attributes:
        kind: the sink kind (``"wandb"``).
        spool_dir: the spool directory.
        left: rows still spooled (``None`` when the spool could not be synced at all).
        error: why it could not be synced (a configuration problem), else ``None``.
    """

    kind: str
    spool_dir: Path
    left: int | None
    error: str | None = None


def spool_syncer(sink_class: object) -> SpoolSyncer | None:
    """How ``sink_class`` syncs a spool, or ``None`` when it cannot.

    Its own ``sync_spool`` (a :class:`SpoolingSink`); else, for a class with only
    ``resume_transport``, :func:`sync_spool` over the transport it rebuilds.
    """
    method = getattr(sink_class, "sync_spool", None)
    if callable(method):
        own: SpoolSyncer = method
        return own
    resume = getattr(sink_class, "resume_transport", None)
    if not callable(resume):
        return None

    def sync(
        spool_dir: Path,
        *,
        http: HttpClient,
        environ: Mapping[str, str],
        timeout: float,
        exit_code_if_unknown: int,
    ) -> int:
        return _resume_and_sync(
            resume,
            spool_dir,
            http=http,
            environ=environ,
            timeout=timeout,
            exit_code_if_unknown=exit_code_if_unknown,
            name=None,
        )

    return sync


def sync_run_dir(
    run_dir: str | os.PathLike[str],
    *,
    sinks: Mapping[str, object],
    http: Any,
    timeout: float,
    environ: Mapping[str, str],
    exit_code_if_unknown: int | None = None,
) -> list[SpoolResult]:
    """Sync every spool under ``run_dir``; a spool that cannot be synced does not stop the rest.

    Args:
        run_dir: the run directory.
        sinks: sink kind → the sink class registered for it (any class; those that
            cannot sync a spool are reported as such).
        http: the HTTP client (an :class:`~crucible_train.ports.http.HttpClient`).
        timeout: seconds to spend per spool at most.
        environ: where sinks read their secrets.
        exit_code_if_unknown: exit code for runs whose process died before ``close``
            (``None``: :data:`~crucible_train.adapters.delivery.constants.UNKNOWN_EXIT_CODE`).

    Returns:
        One result per spool, in directory order.

    Raises:
        ConfigurationError: a ``sink.json`` is unreadable (nothing was synced).
    """
    exit_code = UNKNOWN_EXIT_CODE if exit_code_if_unknown is None else exit_code_if_unknown
    results: list[SpoolResult] = []
    for kind, spool_dir in find_spools(run_dir):
        sync = spool_syncer(sinks.get(kind))
        if sync is None:
            known = ", ".join(
                sorted(k for k, cls in sinks.items() if spool_syncer(cls) is not None)
            )
            error = (
                f"no registered metrics sink {kind!r} can sync a spool (known: {known or 'none'})"
            )
            results.append(SpoolResult(kind=kind, spool_dir=spool_dir, left=None, error=error))
            continue
        try:
            left = sync(
                spool_dir,
                http=http,
                environ=environ,
                timeout=timeout,
                exit_code_if_unknown=exit_code,
            )
        except ConfigurationError as exc:
            results.append(SpoolResult(kind=kind, spool_dir=spool_dir, left=None, error=str(exc)))
            continue
        results.append(SpoolResult(kind=kind, spool_dir=spool_dir, left=int(left)))
    return results
