"""Reliable delivery for network metrics sinks (adapter layer, no technology).

"Never block, never lose": a sink hands each row to :meth:`ReliableSender.submit`, which
only appends it to an in-memory queue on the caller's thread. Two background threads do
the rest:

* the **spooler** assigns each row its sequence number and appends it to a write-ahead
  spool on disk (JSONL segments, flushed after every batch), so rows survive a crash of
  the process or an outage of the service as soon as they are spooled (typically within
  a millisecond);
* the **sender** starts the remote run (:meth:`Transport.start`), then reads rows back
  from the spool in order and delivers them in batches of up to ``max_rows_per_request``
  under a token bucket (``rate_per_s`` refill, ``burst`` capacity), records the
  acknowledged watermark atomically, sends a heartbeat when idle, and marks the run
  finished at :meth:`ReliableSender.close`.

Memory stays bounded whatever the outage: rows wait on disk, not in memory (the sender
holds at most one batch), and the spooler is never held up by the network, so the
caller's queue only ever holds what the disk has not yet absorbed.

Failures:

* retryable errors (:class:`~crucible_train.errors.RetryableHttpError`: 429, 5xx, timeouts,
  refused connections) are retried forever with exponential back-off and jitter,
  ``min(max_backoff_s, min_backoff_s * 2**attempt * U[1, 1.25])``, or exactly the server's
  ``Retry-After`` (at most an hour) when it gave one. Rows are never reordered or
  renumbered. The first failure of an outage is logged once as a warning, the recovery
  once at INFO;
* permanent errors (:class:`~crucible_train.errors.PermanentHttpError`) are logged once at
  ERROR with the server's message and counted in :attr:`ReliableSender.failures`:

  - from ``start``, ``heartbeat`` or ``finish``, and from ``send`` with status 401, 403,
    404 or 501 (bad key, no access, run or project gone, unsupported server), the sender
    **stops**: retrying would fail forever. Rows keep going to the spool and stay there;
    fix the cause and run ``crucible-train logs sync RUN_DIR``;
  - any other permanent error from ``send`` (400, 409, 413, 422, a GraphQL error ...)
    concerns the data: the batch is retried one row at a time to find the row the server
    refuses, that row is moved to ``rejected.jsonl`` in the spool directory (with the
    server's message) and delivery **continues** with the next row, so one bad value
    cannot silence a multi-day run.

Spool layout (:func:`spool_dir_for`): ``RUN_DIR/spool/<sink kind>/`` holds ``sink.json``
(written by the sink: its kind and the run's identity, never a secret), ``state.json``
(sequence counter, acknowledged watermark, the transport's run state, the exit code given
to ``close``; replaced atomically), ``rows-<first seq>.jsonl`` segments (deleted once fully
acknowledged), ``rejected.jsonl`` and ``lock`` (an advisory lock: one sender per spool).
``crucible-train logs sync RUN_DIR`` finds every spool with :func:`find_spools` and
delivers what it holds with :func:`sync_spool`.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import json
import logging
import math
import os
import queue
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Final, Protocol, runtime_checkable

import attrs

from crucible_train.errors import (
    ConfigurationError,
    HttpClientError,
    MetricsSinkError,
    PermanentHttpError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpClient

__all__ = [
    "LOCK_FILE",
    "MAX_RETRY_AFTER_S",
    "REJECTED_FILE",
    "SINK_FILE",
    "SPOOL_DIRNAME",
    "STATE_FILE",
    "UNKNOWN_EXIT_CODE",
    "ReliableSender",
    "ResumableSink",
    "SpoolStatus",
    "SpooledRow",
    "SpoolingSink",
    "TokenBucket",
    "Transport",
    "backoff_delay",
    "find_spools",
    "json_safe",
    "read_sink_info",
    "reset_spool",
    "spool_dir_for",
    "spool_status",
    "sync_spool",
    "write_sink_info",
]

_log = logging.getLogger(__name__)

SPOOL_DIRNAME: Final = "spool"
"""``RUN_DIR/spool/<sink kind>/`` holds one sink's spool."""
SINK_FILE: Final = "sink.json"
"""Written by the sink: ``{"kind": ..., ...identity}``; what ``logs sync`` rebuilds from."""
STATE_FILE: Final = "state.json"
"""Sequence counter, acknowledged watermark, run state and exit code (atomic writes)."""
REJECTED_FILE: Final = "rejected.jsonl"
"""Rows the service refused permanently, each with the server's message."""
LOCK_FILE: Final = "lock"
"""Advisory lock held by the one sender using the spool."""
UNKNOWN_EXIT_CODE: Final = 1
"""Exit code :func:`sync_spool` reports when the process died before ``close``.

A run that never reached ``close`` did not finish successfully, so it is marked failed
(a definite state in every service) rather than left to the service's crash detection;
resuming the run later reopens it. ``crucible-train logs sync --exit-code`` overrides it.
"""
MAX_RETRY_AFTER_S: Final = 3600.0
"""A ``Retry-After`` longer than this (seconds) is capped: a guard against absurd values."""

_SEGMENT_PREFIX: Final = "rows-"
_SEGMENT_SUFFIX: Final = ".jsonl"
_SEGMENT_ROWS: Final = 10_000  # rows per spool segment; acknowledged segments are deleted
_DRAIN_MAX: Final = 10_000  # rows the spooler takes from the queue per write
_STOP_STATUSES: Final = frozenset({401, 403, 404, 501})  # retrying these fails forever
_STATE_FORMAT: Final = 1
_ATEXIT_SPOOL_WAIT_S: Final = 5.0
_SPOOL_GRACE_S: Final = 2.0  # close() waits at least this long for the spooler


# --- value objects and protocols ------------------------------------------------------


@attrs.frozen(kw_only=True)
class SpooledRow:
    """One unit of work, persisted in the spool before it is sent.

    Attributes:
        seq: 0-based position in the run's whole life, contiguous and kept across
            restarts; the order rows are delivered in.
        kind: what the row holds, defined by the transport (``"metrics"``, ``"hparams"``,
            ``"text"`` ...).
        payload: the row's content, JSON-safe (read back from the spool).
        time: Unix time (seconds) when the row was submitted.
    """

    seq: int
    kind: str
    payload: Mapping[str, Any]
    time: float


@runtime_checkable
class Transport(Protocol):
    """The wire half of a network sink, driven by :class:`ReliableSender`'s thread.

    Every method may raise :class:`~crucible_train.errors.RetryableHttpError` (the sender
    backs off and calls again) or :class:`~crucible_train.errors.PermanentHttpError`
    (see the module docstring for what the sender then does). Called from one thread.
    """

    def start(self, state: dict[str, Any]) -> dict[str, Any]:
        """Create or resume the remote run.

        Args:
            state: the run state persisted by the last successful ``start`` or ``send``
                (``{}`` the very first time).

        Returns:
            The state to persist (ids, offsets ...). JSON-safe; never a secret.
        """
        ...

    def send(self, rows: Sequence[SpooledRow]) -> Mapping[str, Any] | None:
        """Deliver ``rows`` (contiguous, in ``seq`` order).

        Must be idempotent per row: rows whose acknowledgement was lost are sent again,
        and must not be stored twice. A transport whose run state changes as rows are
        delivered (offsets, counters) returns the new state, which the sender persists
        atomically with the acknowledgement; ``None`` means "unchanged". On an exception
        the transport must leave its state as before the call.
        """
        ...

    def heartbeat(self) -> None:
        """Tell the service the run is alive (called when nothing was sent for a while)."""
        ...

    def finish(self, exit_code: int) -> None:
        """Mark the run finished (``exit_code`` 0) or failed (anything else)."""
        ...


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


@attrs.frozen(kw_only=True)
class SpoolStatus:
    """What a spool holds, read from disk without starting anything.

    Attributes:
        pending: rows spooled but not acknowledged.
        next_seq: the sequence number the next row would get.
        exit_code: the exit code given to ``close`` (``None``: close was never called).
        finished: the run was marked finished and nothing was spooled since.
        started: the remote run was created at least once (the run state is not empty).
    """

    pending: int
    next_seq: int
    exit_code: int | None
    finished: bool
    started: bool


# --- pure helpers ---------------------------------------------------------------------


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate_per_s``; one token per request.

    Not thread-safe (the sender thread owns it).

    Args:
        rate_per_s: tokens added per second (sustained requests per second).
        burst: capacity, and the number of tokens at the start.
        clock: monotonic seconds.
    """

    def __init__(
        self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = float(rate_per_s)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now (after refilling)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)

    def try_acquire(self) -> float:
        """Take one token if there is one.

        Returns:
            0.0 when a token was taken; otherwise the seconds until one will be available
            (nothing is taken: call again after waiting).
        """
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


def backoff_delay(
    attempt: int,
    *,
    min_s: float,
    max_s: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    Args:
        attempt: failures so far minus one (0 for the first retry).
        min_s: the first delay (before jitter).
        max_s: the longest delay.
        rng: jitter source.
        retry_after: the server's ``Retry-After`` in seconds, which wins when set (capped
            at :data:`MAX_RETRY_AFTER_S`).

    Returns:
        ``retry_after`` when given, else ``min(max_s, min_s * 2**attempt * U[1, 1.25])``.
    """
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        return min(float(retry_after), MAX_RETRY_AFTER_S)
    # Cap the exponent: 2**1100 overflows a float, and the result is max_s long before.
    exponent = min(max(attempt, 0), 64)
    return min(max_s, min_s * (2.0**exponent) * rng.uniform(1.0, 1.25))


def json_safe(value: Any, *, _depth: int = 0) -> Any:
    """A copy of ``value`` made of JSON types only (dict, list, str, int, float, bool, None).

    Mappings keep their structure with string keys; sequences and sets become lists;
    numpy scalars and arrays, ``attrs`` instances, paths and enums become their plain
    values; anything else becomes its ``str``. NaN and infinities stay floats (the
    caller decides how to encode them). Deeper than 32 levels becomes ``str``.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if _depth > 32:
        return str(value)
    depth = _depth + 1
    if isinstance(value, Mapping):
        return {str(key): json_safe(item, _depth=depth) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, _depth=depth) for item in value]
    if attrs.has(type(value)):
        return json_safe(attrs.asdict(value, recurse=False), _depth=depth)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value, _depth=depth)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        try:
            return json_safe(tolist(), _depth=depth)
        except (TypeError, ValueError):
            pass
    return str(value)


def _spool_default(value: Any) -> Any:
    """``json.dumps`` hook for spooled payloads: numpy scalars and the like."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return json_safe(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_spool_default, separators=(",", ":"), allow_nan=True)


def _write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` so a crash leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(_dumps(value))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# --- spool discovery (what `crucible-train logs sync` uses) ---------------------------


def spool_dir_for(run_dir: str | os.PathLike[str], kind: str) -> Path:
    """The spool directory of sink ``kind`` under ``run_dir``: ``RUN_DIR/spool/<kind>``."""
    return Path(run_dir) / SPOOL_DIRNAME / kind


def write_sink_info(spool_dir: Path, kind: str, info: Mapping[str, Any]) -> None:
    """Record which sink owns ``spool_dir`` and the run's identity (no secrets).

    Args:
        spool_dir: the spool directory (created if missing).
        kind: the sink's backend name in ``containers.yaml`` (``"wandb"``, ``"neptune"``);
            ``logs sync`` finds the sink class by it.
        info: JSON-safe identity the sink's ``resume_transport`` needs.
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(spool_dir / SINK_FILE, {**json_safe(dict(info)), "kind": kind})


def read_sink_info(spool_dir: Path) -> dict[str, Any]:
    """The ``sink.json`` of ``spool_dir``.

    Raises:
        ConfigurationError: the file is missing or is not a JSON object with a ``kind``.
    """
    path = spool_dir / SINK_FILE
    try:
        info = _read_json(path)
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path} does not exist; {spool_dir} is not a sink spool"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} cannot be read: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("kind"), str):
        raise ConfigurationError(f"{path} is not a sink description (no 'kind')")
    return info


def find_spools(run_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """Every sink spool under ``run_dir``, as ``(kind, spool_dir)`` sorted by directory.

    A spool is a directory ``RUN_DIR/spool/*/`` holding a readable ``sink.json``.
    """
    root = Path(run_dir) / SPOOL_DIRNAME
    found: list[tuple[str, Path]] = []
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        if not (child / SINK_FILE).is_file():
            continue
        try:
            found.append((read_sink_info(child)["kind"], child))
        except ConfigurationError as exc:
            _log.warning("skipping %s: %s", child, exc)
    return found


def _segment_paths(spool_dir: Path) -> list[tuple[int, Path]]:
    found: list[tuple[int, Path]] = []
    if not spool_dir.is_dir():
        return found
    for path in spool_dir.iterdir():
        name = path.name
        if name.startswith(_SEGMENT_PREFIX) and name.endswith(_SEGMENT_SUFFIX):
            digits = name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)]
            if digits.isdigit():
                found.append((int(digits), path))
    return sorted(found)


def _line_seq(line: bytes) -> int:
    """The ``seq`` of a spool line, which always starts ``{"seq":N,``."""
    return int(line[7 : line.index(b",")])


def _last_complete_seq(path: Path, *, repair: bool) -> int | None:
    """The last complete row's seq in a segment; with ``repair``, cut a torn last line."""
    with open(path, "rb") as handle:
        data = handle.read()
    end = data.rfind(b"\n")
    if repair and end + 1 != len(data):
        # A crash mid-write left a partial line: that row was never durable; drop it.
        with open(path, "r+b") as handle:
            handle.truncate(end + 1)
    if end < 0:
        return None
    start = data.rfind(b"\n", 0, end) + 1
    try:
        return _line_seq(data[start:end])
    except ValueError:
        return None


def _load_state(spool_dir: Path) -> dict[str, Any]:
    path = spool_dir / STATE_FILE
    try:
        state = _read_json(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MetricsSinkError(f"{path} cannot be read ({exc}); the spool is damaged") from None
    return state if isinstance(state, dict) else {}


def spool_status(spool_dir: Path) -> SpoolStatus:
    """What ``spool_dir`` holds, read from disk (nothing is started or locked).

    Raises:
        MetricsSinkError: ``state.json`` is unreadable.
    """
    state = _load_state(spool_dir)
    acked = int(state.get("acked", 0))
    next_seq = max(int(state.get("next_seq", 0)), acked)
    segments = _segment_paths(spool_dir)
    for _first, path in reversed(segments):
        last = _last_complete_seq(path, repair=False)
        if last is not None:
            next_seq = max(next_seq, last + 1)
            break
    exit_code = state.get("exit_code")
    return SpoolStatus(
        pending=next_seq - acked,
        next_seq=next_seq,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        finished=bool(state.get("finished", False)),
        started=bool(state.get("run")),
    )


def reset_spool(spool_dir: Path) -> None:
    """Delete a spool's state, segments and rejected rows (``sink.json`` is kept).

    Only for a spool whose rows were all delivered, before it is reused for another run.

    Raises:
        MetricsSinkError: rows are still pending (they would be lost).
    """
    if spool_status(spool_dir).pending:
        raise MetricsSinkError(f"{spool_dir} still holds undelivered rows; not resetting it")
    for _first, path in _segment_paths(spool_dir):
        path.unlink(missing_ok=True)
    for name in (STATE_FILE, REJECTED_FILE):
        (spool_dir / name).unlink(missing_ok=True)


# --- the lock -------------------------------------------------------------------------


def _lock(spool_dir: Path) -> int | None:
    """Take the spool's advisory lock (``None`` where ``fcntl`` does not exist)."""
    try:
        import fcntl  # POSIX only; elsewhere two senders on one spool are not detected
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(spool_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigurationError(
            f"the spool {spool_dir} is in use by another sender (a running training process "
            "or `crucible-train logs sync`); give each run its own run_dir, or wait for it "
            "to finish"
        ) from None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


# --- the on-disk rows -----------------------------------------------------------------


class _SpoolFiles:
    """Append-only segments of spooled rows, read back in ``seq`` order.

    The spooler thread appends, the sender thread reads and deletes acknowledged
    segments; one lock serialises them (appends hold it while writing whole lines, so a
    reader never sees half a row).
    """

    def __init__(self, spool_dir: Path, *, next_seq_hint: int) -> None:
        self._dir = spool_dir
        self._lock = threading.Lock()
        self._segments: list[int] = []
        next_seq = next_seq_hint
        segments = _segment_paths(spool_dir)
        self._segments = [first for first, _path in segments]
        # The newest segment may end in a torn line (crash mid-write) or be empty (crash
        # right after it was created): repair it, and take the counter from the newest
        # segment that holds a complete row.
        for index, (_first, path) in enumerate(reversed(segments)):
            last = _last_complete_seq(path, repair=index == 0)
            if last is not None:
                next_seq = max(next_seq, last + 1)
                break
        self.next_seq = next_seq
        self._closed = False
        self._writer: IO[bytes] | None = None
        self._writer_rows = _SEGMENT_ROWS  # forces a fresh segment on the first append
        self._reader: IO[bytes] | None = None
        self._reader_segment = -1
        self._reader_next = -1

    def _path(self, first: int) -> Path:
        return self._dir / f"{_SEGMENT_PREFIX}{first:012d}{_SEGMENT_SUFFIX}"

    def append(self, lines: Sequence[bytes]) -> None:
        """Append complete lines (already numbered from ``next_seq``) and flush them."""
        with self._lock:
            if self._closed:
                raise OSError("the spool is closed")
            written = 0
            while written < len(lines):
                if self._writer is None or self._writer_rows >= _SEGMENT_ROWS:
                    if self._writer is not None:
                        self._writer.close()
                    first = self.next_seq + written
                    self._writer = open(self._path(first), "ab")  # noqa: SIM115 - kept open
                    self._writer_rows = 0
                    if not self._segments or self._segments[-1] != first:
                        self._segments.append(first)
                room = _SEGMENT_ROWS - self._writer_rows
                chunk = lines[written : written + room]
                self._writer.write(b"".join(chunk))
                self._writer_rows += len(chunk)
                written += len(chunk)
            if self._writer is not None:
                self._writer.flush()
            self.next_seq += len(lines)

    def read(self, from_seq: int, limit: int, end_seq: int) -> list[SpooledRow]:
        """Up to ``limit`` rows with ``from_seq <= seq < end_seq``, in order."""
        rows: list[SpooledRow] = []
        with self._lock:
            if self._closed:
                return rows
            if self._reader is None or self._reader_next != from_seq:
                self._seek(from_seq)
            while len(rows) < limit and self._reader_next < end_seq and self._reader:
                position = self._reader.tell()
                line = self._reader.readline()
                if not line.endswith(b"\n"):
                    self._reader.seek(position)
                    if not self._next_segment():
                        break
                    continue
                try:
                    record = json.loads(line)
                    row = SpooledRow(
                        seq=int(record["seq"]),
                        kind=str(record["kind"]),
                        payload=record["payload"],
                        time=float(record["time"]),
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    _log.error("skipping a damaged line in the spool %s: %s", self._dir, exc)
                    continue
                if row.seq < from_seq:
                    continue
                rows.append(row)
                self._reader_next = row.seq + 1
        return rows

    def _seek(self, seq: int) -> None:
        self._close_reader()
        candidates = [first for first in self._segments if first <= seq]
        if not candidates:
            if not self._segments:
                return
            candidates = [self._segments[0]]  # rows below the first segment are gone
        self._open_segment(candidates[-1])
        assert self._reader is not None
        while True:
            position = self._reader.tell()
            line = self._reader.readline()
            if not line.endswith(b"\n"):
                self._reader.seek(position)
                break
            try:
                if _line_seq(line) >= seq:
                    self._reader.seek(position)
                    break
            except ValueError:
                continue
        self._reader_next = seq

    def _open_segment(self, first: int) -> None:
        self._close_reader()
        try:
            self._reader = open(self._path(first), "rb")  # noqa: SIM115 - kept open
        except FileNotFoundError:
            self._reader = None
            return
        self._reader_segment = first

    def _next_segment(self) -> bool:
        later = [first for first in self._segments if first > self._reader_segment]
        if not later:
            return False
        self._open_segment(later[0])
        return self._reader is not None

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._reader_segment = -1

    def drop_acked(self, acked: int) -> None:
        """Delete segments whose rows are all below ``acked`` (never the newest one)."""
        with self._lock:
            while len(self._segments) >= 2 and self._segments[1] <= acked:
                first = self._segments.pop(0)
                if self._reader_segment == first:
                    self._close_reader()
                    self._reader_next = -1
                self._path(first).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the open files (a ``ResourceWarning`` otherwise)."""
        with self._lock:
            self._closed = True
            self._close_reader()
            if self._writer is not None:
                with contextlib.suppress(OSError):
                    self._writer.flush()
                    os.fsync(self._writer.fileno())
                self._writer.close()
                self._writer = None


# --- the sender -----------------------------------------------------------------------

_STOP_ITEM: Final = object()  # queue sentinel: the spooler exits after draining


class ReliableSender:
    """Delivers rows through a :class:`Transport` without blocking or losing them.

    See the module docstring for the threads, the spool and the failure policy.

    Args:
        transport: the wire protocol.
        spool_dir: the spool directory (created if missing; locked while in use).
        rate_per_s: sustained requests per second (token refill rate).
        burst: requests that may go back to back (bucket capacity).
        heartbeat_s: call ``transport.heartbeat()`` after this many idle seconds;
            ``None`` for never.
        max_rows_per_request: rows per ``transport.send`` call at most.
        min_backoff_s: first retry delay (before jitter).
        max_backoff_s: longest retry delay.
        clock: monotonic seconds for the token bucket and the heartbeat; flush and close
            deadlines always use real time.
        sleep: waits out back-off and rate limits; default: a wait that ``close`` can
            interrupt. A fake can record the delays instead (tests).
        rng: jitter source (default: a fresh ``random.Random()``).
        name: how log messages name the service (``"W&B"``).

    Raises:
        ConfigurationError: an argument is out of range, or another sender holds the spool.
        MetricsSinkError: the spool's state file is damaged.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        spool_dir: Path,
        rate_per_s: float,
        burst: int,
        heartbeat_s: float | None,
        max_rows_per_request: int = 1000,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        name: str = "metrics service",
    ) -> None:
        _check_options(
            rate_per_s=rate_per_s,
            burst=burst,
            heartbeat_s=heartbeat_s,
            max_rows_per_request=max_rows_per_request,
            min_backoff_s=min_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self._transport = transport
        self._dir = Path(spool_dir)
        self._name = name
        self._clock = clock
        self._injected_sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._heartbeat_s = heartbeat_s
        self._max_rows = max_rows_per_request
        self._min_backoff = float(min_backoff_s)
        self._max_backoff = float(max_backoff_s)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self._dir)
        try:
            state = _load_state(self._dir)
            self._acked = int(state.get("acked", 0))
            self._files = _SpoolFiles(
                self._dir, next_seq_hint=max(int(state.get("next_seq", 0)), self._acked)
            )
        except BaseException:
            _unlock(self._lock_fd)
            raise
        run = state.get("run")
        self._run_state: dict[str, Any] = dict(run) if isinstance(run, dict) else {}
        # A new session has no exit code yet: the previous session's must not be used by
        # `logs sync` if this one dies (it is cleared on disk below, before any row).
        self._recorded_exit_code: int | None = None
        # A reopened spool belongs to a run that goes on: whatever an earlier session
        # finished must be finished again after this session's rows, so close() must not
        # take the old flag as "done" and return before they are sent.
        self._finished = False
        self._rejected = int(state.get("rejected", 0))
        self._base_seq = self._files.next_seq  # seq of the first row submitted now
        self._durable = self._base_seq  # rows below this are on disk
        self._submitted = 0  # rows submitted by this process (caller thread only)
        self._dropped = 0  # submitted rows that could not be serialised (spooler thread)
        self._closed = False
        self._failures = 0
        self._stopped: str | None = None
        self._started = False
        self._finish_code: int | None = None
        self._sender_done = False
        self._inflight: list[SpooledRow] | None = None
        self._split_until = -1  # rows below this are sent one by one (isolating a bad row)
        self._outage_attempts = 0
        self._spool_error_reported = False
        self._cond = threading.Condition()
        self._abandon = threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._bucket = TokenBucket(rate_per_s=rate_per_s, burst=burst, clock=clock)
        self._last_request = clock()
        with self._cond:
            self._persist_locked()
        self._spooler = threading.Thread(
            target=self._spooler_main, name=f"crucible-{name}-spooler", daemon=True
        )
        self._sender = threading.Thread(
            target=self._sender_main, name=f"crucible-{name}-sender", daemon=True
        )
        # Daemon threads die with the interpreter; at exit, give the spooler a moment to
        # put what is queued on disk, so `logs sync` can deliver it later.
        self._atexit = _AtExit(self)
        atexit.register(self._atexit)
        self._spooler.start()
        self._sender.start()

    def __repr__(self) -> str:
        return (
            f"ReliableSender(name={self._name!r}, spool_dir={str(self._dir)!r}, "
            f"pending={self.pending_count})"
        )

    # --- caller-thread API ------------------------------------------------------------

    def submit(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Queue one row; O(1), no I/O, no serialisation (the spooler does that).

        ``payload`` must not be mutated afterwards (pass a copy) and must be JSON-safe
        apart from numpy scalars, which are converted when spooled.

        Raises:
            MetricsSinkError: the sender is closed.
        """
        if self._closed:
            raise MetricsSinkError(
                f"{self._name}: a row was submitted after close(); the sink is closed"
            )
        self._submitted += 1
        self._queue.put((kind, payload, time.time()))

    def wait_spooled(self, timeout: float) -> bool:
        """Wait until every row submitted so far is on disk.

        Returns:
            Whether they all are (``False`` when ``timeout`` seconds passed first).
        """
        submitted = self._submitted
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._durable < self._target(submitted) and self._spooler.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._durable >= self._target(submitted)

    def _target(self, submitted: int | None = None) -> int:
        """The seq after the last of the first ``submitted`` rows (default: all so far)."""
        count = self._submitted if submitted is None else submitted
        # Rows the spooler could not store never get a seq; `_dropped` grows later than
        # `_submitted`, so callers waiting in a loop recompute this.
        return self._base_seq + count - self._dropped

    def flush(self, timeout: float) -> int:
        """Wait until every row submitted so far is acknowledged, for at most ``timeout`` s.

        Returns early when the sender has stopped on a permanent error.

        Returns:
            Rows still unacknowledged (0 when all were delivered).
        """
        submitted = self._submitted
        deadline = time.monotonic() + timeout
        with self._cond:
            while (
                self._acked < self._target(submitted)
                and self._stopped is None
                and not self._sender_done
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return max(0, self._target(submitted) - self._acked)

    def close(self, exit_code: int, timeout: float) -> int:
        """Flush for at most ``timeout`` s, then mark the run finished if all was sent.

        The exit code is recorded in the spool first, so ``logs sync`` can finish the
        run with it later. Idempotent: later calls only return the count.

        Args:
            exit_code: 0 for success; anything else marks the run failed.
            timeout: seconds to spend delivering before giving up (real time); rows
                still queued in memory are always written to the spool first.

        Returns:
            Rows left in the spool. When not 0 (or the run could not be marked
            finished) a warning names ``crucible-train logs sync RUN_DIR``.
        """
        if self._closed:
            return self.pending_count
        self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._recorded_exit_code = int(exit_code)
            self._persist_locked()
        self._queue.put(_STOP_ITEM)
        # Putting queued rows on disk is local and takes milliseconds; it gets a moment
        # even when `timeout` is shorter, or those rows would be lost.
        self._spooler.join(max(_SPOOL_GRACE_S, deadline - time.monotonic()))
        with self._cond:
            self._finish_code = int(exit_code)
            self._cond.notify_all()
            while not (self._finished or self._stopped is not None or self._sender_done):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            # A run that was never created and holds no rows has nothing to finish.
            never_existed = not self._started and not self._run_state
            # Past the deadline the sender must not touch the spool any more: a request
            # still in flight is abandoned (sent again later if it was not recorded).
            self._abandon.set()
            self._cond.notify_all()
        self._sender.join(max(0.05, min(1.0, deadline - time.monotonic())))
        left = self.pending_count
        finished = self._finished
        with self._cond:
            self._files.close()
            _unlock(self._lock_fd)
            self._lock_fd = None
        atexit.unregister(self._atexit)
        if left or (not finished and not never_existed):
            run_dir = self._dir.parent.parent
            if left:
                what = f"{left} rows are still spooled in {self._dir}; deliver them"
            else:
                what = "every row was delivered but the run was not marked finished; finish it"
            _log.warning("%s: %s with `crucible-train logs sync %s`", self._name, what, run_dir)
        if self._rejected:
            _log.warning(
                "%s: %d rows were refused by the service and kept in %s",
                self._name,
                self._rejected,
                self._dir / REJECTED_FILE,
            )
        return left

    # --- observation --------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """A copy of the transport's persisted run state (``{}`` before the first start)."""
        with self._cond:
            return dict(self._run_state)

    @property
    def failures(self) -> int:
        """Permanent failures reported so far (rows rejected, or the stop)."""
        return self._failures

    @property
    def stopped(self) -> str | None:
        """Why delivery stopped for good (``None`` while it goes on)."""
        return self._stopped

    @property
    def pending_count(self) -> int:
        """Rows submitted (in any process) and not yet acknowledged."""
        return max(0, self._target() - self._acked)

    @property
    def rejected_count(self) -> int:
        """Rows the service refused, kept in ``rejected.jsonl``."""
        return self._rejected

    @property
    def started(self) -> bool:
        """Whether the remote run has been created or resumed in this process."""
        return self._started

    @property
    def finished(self) -> bool:
        """Whether the run was marked finished."""
        return self._finished

    @property
    def spool_dir(self) -> Path:
        """The spool directory."""
        return self._dir

    # --- spooler thread ---------------------------------------------------------------

    def _spooler_main(self) -> None:
        held: list[bytes] = []  # rows serialised but not yet written (disk errors)
        stop = False
        while not stop or held:
            items: list[Any] = []
            if not stop:
                items.append(self._queue.get())
                while len(items) < _DRAIN_MAX:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            for item in items:
                if item is _STOP_ITEM:
                    stop = True
                    continue
                line = self._serialise(item, self._files.next_seq + len(held))
                if line is not None:
                    held.append(line)
            if not held:
                with self._cond:  # only dropped rows: flush targets moved, wake waiters
                    self._cond.notify_all()
                continue
            try:
                self._files.append(held)
            except OSError as exc:
                if not self._spool_error_reported:
                    self._spool_error_reported = True
                    _log.error(
                        "%s: cannot write the spool %s (%s); rows are kept in memory and "
                        "written when the disk recovers",
                        self._name,
                        self._dir,
                        exc,
                    )
                if stop or self._abandon.wait(1.0):
                    return  # closing while the disk is broken: nothing else can be done
                continue
            held = []
            with self._cond:
                self._durable = self._files.next_seq
                self._cond.notify_all()

    def _serialise(self, item: tuple[str, Mapping[str, Any], float], seq: int) -> bytes | None:
        kind, payload, submitted = item
        try:
            text = _dumps({"seq": seq, "kind": kind, "time": submitted, "payload": payload})
        except (TypeError, ValueError, RecursionError) as exc:
            # Sinks validate rows before submitting, so this is a bug; say so loudly. The
            # row gets no seq, and flush must not wait for it.
            self._failures += 1
            self._dropped += 1
            _log.error("%s: a %s row cannot be stored and is dropped: %s", self._name, kind, exc)
            return None
        return (text + "\n").encode("utf-8")

    # --- sender thread ----------------------------------------------------------------

    def _sender_main(self) -> None:
        try:
            if self._start_transport():
                self._send_loop()
        except BaseException as exc:  # never die silently; the rows stay spooled
            self._stop(f"unexpected {type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                self._sender_done = True
                self._cond.notify_all()

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; ``False`` when the sender was abandoned meanwhile."""
        if seconds > 0:
            if self._injected_sleep is not None:
                self._injected_sleep(seconds)
            else:
                self._abandon.wait(seconds)
        return not self._abandon.is_set()

    def _start_transport(self) -> bool:
        attempt = 0
        while not self._abandon.is_set():
            try:
                new_state = self._transport.start(dict(self._run_state))
            except RetryableHttpError as exc:
                self._note_retry("start", exc)
                delay = self._backoff(attempt, exc)
                attempt += 1
                if not self._sleep(delay):
                    return False
                continue
            except Exception as exc:
                self._stop(_describe(exc))
                return False
            with self._cond:
                if self._abandon.is_set():
                    return False
                self._run_state = dict(new_state)
                self._started = True
                self._persist_locked()
                self._cond.notify_all()
            self._note_recovered()
            self._last_request = self._clock()
            return True
        return False

    def _next_action(self) -> str:
        with self._cond:
            while True:
                if self._abandon.is_set() or self._stopped is not None:
                    return "quit"
                if self._inflight or self._durable > self._acked:
                    return "send"
                if self._finish_code is not None:
                    return "quit" if self._finished else "finish"
                if self._heartbeat_s is None:
                    self._cond.wait()
                    continue
                due = self._last_request + self._heartbeat_s - self._clock()
                if due <= 0:
                    return "heartbeat"
                self._cond.wait(due)

    def _take_token(self) -> bool:
        while True:
            delay = self._bucket.try_acquire()
            if delay <= 0:
                return True
            if not self._sleep(delay):
                return False

    def _send_loop(self) -> None:
        attempt = 0
        while True:
            action = self._next_action()
            if action == "quit":
                return
            if not self._take_token():
                return
            try:
                if action == "send":
                    self._send_batch()
                elif action == "finish":
                    self._transport.finish(self._finish_code or 0)
                    with self._cond:
                        if not self._abandon.is_set():
                            self._finished = True
                            self._persist_locked()
                        self._cond.notify_all()
                else:
                    self._transport.heartbeat()
            except RetryableHttpError as exc:
                self._last_request = self._clock()
                if action == "heartbeat":
                    _log.debug("%s: heartbeat failed: %s", self._name, exc)
                    continue  # the next one is due in heartbeat_s anyway
                self._note_retry(action, exc)
                delay = self._backoff(attempt, exc)
                attempt += 1
                if not self._sleep(delay):
                    return
                continue
            except Exception as exc:
                self._last_request = self._clock()
                if action == "send" and not _stops_delivery(exc):
                    self._refused(exc)
                    continue
                if action == "finish":
                    self._report(f"the run could not be marked finished: {_describe(exc)}")
                    with self._cond:
                        self._stopped = f"finish refused: {_describe(exc)}"
                        self._failures += 1
                        self._cond.notify_all()
                    return
                self._stop(_describe(exc))
                return
            attempt = 0
            self._last_request = self._clock()
            self._note_recovered()

    def _send_batch(self) -> None:
        if not self._inflight:
            with self._cond:
                start, end = self._acked, self._durable
            limit = 1 if start < self._split_until else self._max_rows
            self._inflight = self._files.read(start, limit, end)
            if self._abandon.is_set():
                return
            if not self._inflight:
                # The rows are gone from disk (deleted by hand?): nothing can send them.
                self._stop(f"rows {start}..{end - 1} are missing from the spool {self._dir}")
                return
        rows = self._inflight
        result = self._transport.send(rows)
        self._ack(rows[-1].seq + 1, result)

    def _refused(self, exc: BaseException) -> None:
        """A permanent error about the data: isolate the refused row, keep it, go on."""
        if self._abandon.is_set():
            return
        rows = self._inflight or []
        self._inflight = None
        if len(rows) > 1:
            self._split_until = rows[-1].seq + 1
            return
        if not rows:
            return
        row = rows[0]
        record = {
            "seq": row.seq,
            "kind": row.kind,
            "time": row.time,
            "payload": row.payload,
            "status": getattr(exc, "status", None),
            "error": str(exc),
        }
        try:
            with open(self._dir / REJECTED_FILE, "a", encoding="utf-8") as handle:
                handle.write(_dumps(record) + "\n")
        except OSError as write_error:
            self._stop(f"{_describe(exc)}; and the refused row cannot be kept: {write_error}")
            return
        self._failures += 1
        self._rejected += 1
        if self._rejected == 1:
            self._report(
                f"the service refused a {row.kind} row (seq {row.seq}): {_describe(exc)}; "
                f"it is kept in {self._dir / REJECTED_FILE} and delivery goes on (further "
                "refusals are counted and summarised at close)"
            )
        self._ack(row.seq + 1, None)

    def _ack(self, upto: int, run_state: Mapping[str, Any] | None) -> None:
        with self._cond:
            if self._abandon.is_set():
                return  # close() gave up on this request: its result is not recorded
            self._acked = upto
            if run_state is not None:
                self._run_state = dict(run_state)
            self._finished = False
            self._persist_locked()
            self._cond.notify_all()
        self._inflight = None
        self._files.drop_acked(upto)

    def _backoff(self, attempt: int, exc: HttpClientError) -> float:
        return backoff_delay(
            attempt,
            min_s=self._min_backoff,
            max_s=self._max_backoff,
            rng=self._rng,
            retry_after=exc.retry_after,
        )

    def _persist_locked(self) -> None:
        """Write ``state.json`` (call with ``_cond`` held)."""
        state = {
            "format": _STATE_FORMAT,
            "next_seq": max(self._files.next_seq, self._acked),
            "acked": self._acked,
            "run": self._run_state,
            "exit_code": self._recorded_exit_code,
            "finished": self._finished,
            "rejected": self._rejected,
        }
        try:
            _write_json_atomic(self._dir / STATE_FILE, state)
        except OSError as exc:
            # The rows are safe in the segments; a stale watermark only means resending.
            _log.error("%s: cannot write %s: %s", self._name, self._dir / STATE_FILE, exc)

    # --- reporting --------------------------------------------------------------------

    def _report(self, message: str) -> None:
        _log.error("%s: %s", self._name, message)

    def _stop(self, reason: str) -> None:
        with self._cond:
            if self._stopped is not None:
                return
            self._stopped = reason
            self._failures += 1
            self._cond.notify_all()
        self._report(
            f"delivery stopped: {reason}. Rows stay in the spool {self._dir}; fix the "
            f"problem, then run `crucible-train logs sync {self._dir.parent.parent}`"
        )

    def _note_retry(self, action: str, exc: HttpClientError) -> None:
        self._outage_attempts += 1
        if self._outage_attempts == 1:
            _log.warning(
                "%s: %s failed (%s); retrying with back-off, rows are kept in the spool",
                self._name,
                action,
                exc,
            )

    def _note_recovered(self) -> None:
        if self._outage_attempts:
            _log.info(
                "%s: delivery resumed after %d failed attempts",
                self._name,
                self._outage_attempts,
            )
            self._outage_attempts = 0


class _AtExit:
    """At interpreter exit, let the spooler write what is queued (weak: no leak)."""

    def __init__(self, sender: ReliableSender) -> None:
        self._sender = weakref.ref(sender)

    def __call__(self) -> None:
        sender = self._sender()
        if sender is not None and not sender._closed:
            sender.wait_spooled(_ATEXIT_SPOOL_WAIT_S)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    status = getattr(exc, "status", None)
    if status is not None and str(status) not in text:
        text = f"HTTP {status}: {text}"
    return text


def _stops_delivery(exc: BaseException) -> bool:
    """Whether a permanent ``send`` error means every later request would fail too."""
    if not isinstance(exc, PermanentHttpError):
        return True  # not the service talking: a bug or a broken client; do not loop
    return exc.status in _STOP_STATUSES


def _check_options(
    *,
    rate_per_s: float,
    burst: int,
    heartbeat_s: float | None,
    max_rows_per_request: int,
    min_backoff_s: float,
    max_backoff_s: float,
) -> None:
    problems: list[str] = []

    def positive(value: object) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )

    for name, value in (
        ("rate_per_s", rate_per_s),
        ("min_backoff_s", min_backoff_s),
        ("max_backoff_s", max_backoff_s),
    ):
        if not positive(value):
            problems.append(f"{name} is {value!r}; use a finite number > 0")
    if heartbeat_s is not None and not positive(heartbeat_s):
        problems.append(f"heartbeat_s is {heartbeat_s!r}; use a number > 0 or None")
    for name, count in (("burst", burst), ("max_rows_per_request", max_rows_per_request)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"{name} is {count!r}; use a whole number >= 1")
    if not problems and max_backoff_s < min_backoff_s:
        problems.append(f"max_backoff_s ({max_backoff_s}) is below min_backoff_s ({min_backoff_s})")
    if problems:
        raise ConfigurationError(*problems)


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
        status = spool_status(spool_dir)
        if status.pending == 0 and (status.finished or not status.started):
            return 0
        transport = cls.resume_transport(spool_dir, http=http, environ=environ)
        return sync_spool(
            spool_dir,
            transport,
            timeout=timeout,
            exit_code_if_unknown=exit_code_if_unknown,
            name=cls.SINK_KIND or None,
        )


def sync_spool(
    spool_dir: Path,
    transport: Transport,
    *,
    timeout: float,
    exit_code_if_unknown: int = UNKNOWN_EXIT_CODE,
    rate_per_s: float = 1.0,
    burst: int = 4,
    max_rows_per_request: int = 1000,
    min_backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    name: str | None = None,
) -> int:
    """Deliver what a spool holds (after a restart), then finish the run.

    Rows go in order, exactly as a live sender would send them; then the run is marked
    finished with the exit code recorded by ``close``, or ``exit_code_if_unknown`` (by
    default :data:`UNKNOWN_EXIT_CODE`, "failed") when the process died before ``close``.
    A spool whose run is already finished and holds nothing is left alone.

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
    if status.pending == 0 and (status.finished or not status.started):
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
