"""The reliable sender (adapter layer): "never block, never lose" for network sinks.

A sink hands each row to :meth:`ReliableSender.submit`, which only appends it to an
in-memory queue on the caller's thread. Two background threads do the rest: the spooler
(:mod:`~crucible_train.adapters.delivery.spooler`) numbers each row and writes it to the
spool on disk, and the sender thread (:mod:`~crucible_train.adapters.delivery.send_loop`)
delivers the spooled rows in order through the sink's
:class:`~crucible_train.adapters.delivery.transport.Transport`, rate-limited, retried
with back-off, and finishes the run at :meth:`ReliableSender.close`.

Memory stays bounded whatever the outage: rows wait on disk, not in memory (the sender
holds at most one batch), and the spooler is never held up by the network, so the
caller's queue only ever holds what the disk has not yet absorbed.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crucible_train.adapters.delivery.constants import (
    ATEXIT_SPOOL_WAIT_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_MAX_ROWS_PER_REQUEST,
    DEFAULT_MIN_BACKOFF_S,
    REJECTED_FILE,
    SPOOL_GRACE_S,
)
from crucible_train.adapters.delivery.options import check_sender_options
from crucible_train.adapters.delivery.progress import DeliveryProgress
from crucible_train.adapters.delivery.rate_limit import TokenBucket
from crucible_train.adapters.delivery.segments import SpoolFiles
from crucible_train.adapters.delivery.send_loop import SendLoop
from crucible_train.adapters.delivery.spool import load_state, lock_spool, unlock_spool
from crucible_train.adapters.delivery.spooler import Spooler
from crucible_train.adapters.delivery.transport import Transport
from crucible_train.errors import MetricsSinkError

__all__ = ["ReliableSender"]

_log = logging.getLogger(__name__)


class ReliableSender:
    """Delivers rows through a :class:`Transport` without blocking or losing them.

    See the module docstrings of this package for the threads, the spool and the
    failure policy.

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
        max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST,
        min_backoff_s: float = DEFAULT_MIN_BACKOFF_S,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        name: str = "metrics service",
    ) -> None:
        check_sender_options(
            rate_per_s=rate_per_s,
            burst=burst,
            heartbeat_s=heartbeat_s,
            max_rows_per_request=max_rows_per_request,
            min_backoff_s=min_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self._dir = Path(spool_dir)
        self._name = name
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = lock_spool(self._dir)
        try:
            state = load_state(self._dir)
            acked = int(state.get("acked", 0))
            files = SpoolFiles(self._dir, next_seq_hint=max(int(state.get("next_seq", 0)), acked))
            rejected = int(state.get("rejected", 0))
        except BaseException:
            unlock_spool(self._lock_fd)
            raise
        run = state.get("run")
        self._progress = DeliveryProgress(
            spool_dir=self._dir,
            name=name,
            files=files,
            acked=acked,
            run_state=dict(run) if isinstance(run, dict) else {},
            rejected=rejected,
        )
        self._base_seq = files.next_seq  # seq of the first row submitted now
        self._submitted = 0  # rows submitted by this process (caller thread only)
        self._closed = False
        self._spooler = Spooler(self._progress)
        self._loop = SendLoop(
            self._progress,
            transport=transport,
            bucket=TokenBucket(rate_per_s=rate_per_s, burst=burst, clock=clock),
            clock=clock,
            sleep=sleep,
            rng=rng if rng is not None else random.Random(),
            heartbeat_s=heartbeat_s,
            max_rows_per_request=max_rows_per_request,
            min_backoff_s=min_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        with self._progress.cond:
            self._progress.persist_locked()
        # The threads run bound methods of this object, so an unclosed sender lives until
        # the interpreter exits, where its (weak) at-exit hook still finds it.
        self._spooler_thread = threading.Thread(
            target=self._run_spooler, name=f"crucible-{name}-spooler", daemon=True
        )
        self._sender_thread = threading.Thread(
            target=self._run_sender, name=f"crucible-{name}-sender", daemon=True
        )
        # Daemon threads die with the interpreter; at exit, give the spooler a moment to
        # put what is queued on disk, so `logs sync` can deliver it later.
        self._atexit = _AtExit(self)
        atexit.register(self._atexit)
        self._spooler_thread.start()
        self._sender_thread.start()

    def _run_spooler(self) -> None:
        self._spooler.run()

    def _run_sender(self) -> None:
        self._loop.run()

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
        self._spooler.put(kind, payload, time.time())

    def wait_spooled(self, timeout: float) -> bool:
        """Wait until every row submitted so far is on disk.

        Returns:
            Whether they all are (``False`` when ``timeout`` seconds passed first).
        """
        progress = self._progress
        submitted = self._submitted
        deadline = time.monotonic() + timeout
        with progress.cond:
            while progress.durable < self._target(submitted) and self._spooler_thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                progress.cond.wait(remaining)
            return progress.durable >= self._target(submitted)

    def _target(self, submitted: int | None = None) -> int:
        """The seq after the last of the first ``submitted`` rows (default: all so far)."""
        count = self._submitted if submitted is None else submitted
        # Rows the spooler could not store never get a seq; `dropped` grows later than
        # `_submitted`, so callers waiting in a loop recompute this.
        return self._base_seq + count - self._progress.dropped

    def flush(self, timeout: float) -> int:
        """Wait until every row submitted so far is acknowledged, for at most ``timeout`` s.

        Returns early when the sender has stopped on a permanent error.

        Returns:
            Rows still unacknowledged (0 when all were delivered).
        """
        progress = self._progress
        submitted = self._submitted
        deadline = time.monotonic() + timeout
        with progress.cond:
            while (
                progress.acked < self._target(submitted)
                and progress.stopped is None
                and not progress.sender_done
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                progress.cond.wait(remaining)
            return max(0, self._target(submitted) - progress.acked)

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
        progress = self._progress
        deadline = time.monotonic() + max(0.0, timeout)
        with progress.cond:
            progress.recorded_exit_code = int(exit_code)
            progress.persist_locked()
        self._spooler.stop()
        # Putting queued rows on disk is local and takes milliseconds; it gets a moment
        # even when `timeout` is shorter, or those rows would be lost.
        self._spooler_thread.join(max(SPOOL_GRACE_S, deadline - time.monotonic()))
        with progress.cond:
            progress.finish_code = int(exit_code)
            progress.cond.notify_all()
            while not (progress.finished or progress.stopped is not None or progress.sender_done):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                progress.cond.wait(remaining)
            # A run that was never created and holds no rows has nothing to finish.
            never_existed = not progress.started and not progress.run_state
            # Past the deadline the sender must not touch the spool any more: a request
            # still in flight is abandoned (sent again later if it was not recorded).
            progress.abandon.set()
            progress.cond.notify_all()
        self._sender_thread.join(max(0.05, min(1.0, deadline - time.monotonic())))
        left = self.pending_count
        finished = progress.finished
        with progress.cond:
            progress.files.close()
            unlock_spool(self._lock_fd)
            self._lock_fd = None
        atexit.unregister(self._atexit)
        if left or (not finished and not never_existed):
            run_dir = self._dir.parent.parent
            if left:
                what = f"{left} rows are still spooled in {self._dir}; deliver them"
            else:
                what = "every row was delivered but the run was not marked finished; finish it"
            _log.warning("%s: %s with `crucible-train logs sync %s`", self._name, what, run_dir)
        if progress.rejected:
            _log.warning(
                "%s: %d rows were refused by the service and kept in %s",
                self._name,
                progress.rejected,
                self._dir / REJECTED_FILE,
            )
        return left

    # --- observation --------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """A copy of the transport's persisted run state (``{}`` before the first start)."""
        with self._progress.cond:
            return dict(self._progress.run_state)

    @property
    def failures(self) -> int:
        """Permanent failures reported so far (rows rejected, or the stop)."""
        return self._progress.failures

    @property
    def stopped(self) -> str | None:
        """Why delivery stopped for good (``None`` while it goes on)."""
        return self._progress.stopped

    @property
    def pending_count(self) -> int:
        """Rows submitted (in any process) and not yet acknowledged."""
        return max(0, self._target() - self._progress.acked)

    @property
    def rejected_count(self) -> int:
        """Rows the service refused, kept in ``rejected.jsonl``."""
        return self._progress.rejected

    @property
    def started(self) -> bool:
        """Whether the remote run has been created or resumed in this process."""
        return self._progress.started

    @property
    def finished(self) -> bool:
        """Whether the run was marked finished."""
        return self._progress.finished

    @property
    def spool_dir(self) -> Path:
        """The spool directory."""
        return self._dir


class _AtExit:
    """At interpreter exit, let the spooler write what is queued (weak: no leak)."""

    def __init__(self, sender: ReliableSender) -> None:
        self._sender = weakref.ref(sender)

    def __call__(self) -> None:
        sender = self._sender()
        if sender is not None and not sender._closed:
            sender.wait_spooled(ATEXIT_SPOOL_WAIT_S)
