"""The sender thread (adapter layer): spooled rows → the service, in order, exactly once.

It starts the remote run (:meth:`Transport.start`), then reads rows back from the spool
in order and delivers them in batches of up to ``max_rows_per_request`` under a token
bucket, records the acknowledged watermark atomically, sends a heartbeat when idle, and
marks the run finished once ``close`` asks for it. The sender holds at most one batch in
memory; everything else waits on disk.

Failures:

* retryable errors (:class:`~crucible_train.errors.RetryableHttpError`: 429, 5xx, timeouts,
  refused connections) are retried forever with exponential back-off and jitter
  (:mod:`crucible_train.adapters.delivery.backoff`), or exactly the server's
  ``Retry-After``. Rows are never reordered or renumbered. The first failure of an
  outage is logged once as a warning, the recovery once at INFO;
* permanent errors (:class:`~crucible_train.errors.PermanentHttpError`) are logged once at
  ERROR with the server's message and counted as failures:

  - from ``start``, ``heartbeat`` or ``finish``, and from ``send`` with status 401, 403,
    404 or 501 (bad key, no access, run or project gone, unsupported server), the sender
    **stops**: retrying would fail forever. Rows keep going to the spool and stay there;
    fix the cause and run ``crucible-train logs sync RUN_DIR``;
  - any other permanent error from ``send`` (400, 409, 413, 422, a GraphQL error ...)
    concerns the data: the batch is retried one row at a time to find the row the server
    refuses, that row is moved to ``rejected.jsonl`` in the spool directory (with the
    server's message) and delivery **continues** with the next row, so one bad value
    cannot silence a multi-day run.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from crucible_train.adapters.delivery.backoff import backoff_delay
from crucible_train.adapters.delivery.constants import REJECTED_FILE
from crucible_train.adapters.delivery.encoding import to_json
from crucible_train.adapters.delivery.progress import DeliveryProgress
from crucible_train.adapters.delivery.rate_limit import TokenBucket
from crucible_train.adapters.delivery.transport import (
    SpooledRow,
    Transport,
    describe_error,
    stops_delivery,
)
from crucible_train.errors import HttpClientError, RetryableHttpError

__all__ = ["SendLoop"]

_log = logging.getLogger(__name__)


class SendLoop:
    """The sender thread's body (:meth:`run`): drives a :class:`Transport` from the spool.

    Args:
        progress: the sender's shared state.
        transport: the wire protocol.
        bucket: the rate limit (one token per request).
        clock: monotonic seconds (for the heartbeat).
        sleep: waits out back-off and rate limits; ``None``: a wait that ``abandon``
            interrupts.
        rng: jitter source.
        heartbeat_s: idle seconds before a heartbeat; ``None`` for never.
        max_rows_per_request: rows per ``send`` at most.
        min_backoff_s: first retry delay.
        max_backoff_s: longest retry delay.
    """

    def __init__(
        self,
        progress: DeliveryProgress,
        *,
        transport: Transport,
        bucket: TokenBucket,
        clock: Callable[[], float],
        sleep: Callable[[float], None] | None,
        rng: random.Random,
        heartbeat_s: float | None,
        max_rows_per_request: int,
        min_backoff_s: float,
        max_backoff_s: float,
    ) -> None:
        self._progress = progress
        self._transport = transport
        self._bucket = bucket
        self._clock = clock
        self._injected_sleep = sleep
        self._rng = rng
        self._heartbeat_s = heartbeat_s
        self._max_rows = max_rows_per_request
        self._min_backoff = float(min_backoff_s)
        self._max_backoff = float(max_backoff_s)
        self._inflight: list[SpooledRow] | None = None
        self._split_until = -1  # rows below this are sent one by one (isolating a bad row)
        self._outage_attempts = 0
        self._last_request = clock()

    def run(self) -> None:
        """The thread's body: start the run, deliver until told to quit, then say so."""
        progress = self._progress
        try:
            if self._start_transport():
                self._send_loop()
        except BaseException as exc:  # never die silently; the rows stay spooled
            self._stop(f"unexpected {type(exc).__name__}: {exc}")
        finally:
            with progress.cond:
                progress.sender_done = True
                progress.cond.notify_all()

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; ``False`` when the sender was abandoned meanwhile."""
        if seconds > 0:
            if self._injected_sleep is not None:
                self._injected_sleep(seconds)
            else:
                self._progress.abandon.wait(seconds)
        return not self._progress.abandon.is_set()

    def _start_transport(self) -> bool:
        progress = self._progress
        attempt = 0
        while not progress.abandon.is_set():
            try:
                new_state = self._transport.start(dict(progress.run_state))
            except RetryableHttpError as exc:
                self._note_retry("start", exc)
                delay = self._backoff(attempt, exc)
                attempt += 1
                if not self._sleep(delay):
                    return False
                continue
            except Exception as exc:
                self._stop(describe_error(exc))
                return False
            with progress.cond:
                if progress.abandon.is_set():
                    return False
                progress.run_state = dict(new_state)
                progress.started = True
                progress.persist_locked()
                progress.cond.notify_all()
            self._note_recovered()
            self._last_request = self._clock()
            return True
        return False

    def _next_action(self) -> str:
        progress = self._progress
        with progress.cond:
            while True:
                if progress.abandon.is_set() or progress.stopped is not None:
                    return "quit"
                if self._inflight or progress.durable > progress.acked:
                    return "send"
                if progress.finish_code is not None:
                    return "quit" if progress.finished else "finish"
                if self._heartbeat_s is None:
                    progress.cond.wait()
                    continue
                due = self._last_request + self._heartbeat_s - self._clock()
                if due <= 0:
                    return "heartbeat"
                progress.cond.wait(due)

    def _take_token(self) -> bool:
        while True:
            delay = self._bucket.try_acquire()
            if delay <= 0:
                return True
            if not self._sleep(delay):
                return False

    def _send_loop(self) -> None:
        progress = self._progress
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
                    self._transport.finish(progress.finish_code or 0)
                    with progress.cond:
                        if not progress.abandon.is_set():
                            progress.finished = True
                            progress.persist_locked()
                        progress.cond.notify_all()
                else:
                    self._transport.heartbeat()
            except RetryableHttpError as exc:
                self._last_request = self._clock()
                if action == "heartbeat":
                    _log.debug("%s: heartbeat failed: %s", progress.name, exc)
                    continue  # the next one is due in heartbeat_s anyway
                self._note_retry(action, exc)
                delay = self._backoff(attempt, exc)
                attempt += 1
                if not self._sleep(delay):
                    return
                continue
            except Exception as exc:
                self._last_request = self._clock()
                if action == "send" and not stops_delivery(exc):
                    self._refused(exc)
                    continue
                if action == "finish":
                    self._report(f"the run could not be marked finished: {describe_error(exc)}")
                    with progress.cond:
                        progress.stopped = f"finish refused: {describe_error(exc)}"
                        progress.failures += 1
                        progress.cond.notify_all()
                    return
                self._stop(describe_error(exc))
                return
            attempt = 0
            self._last_request = self._clock()
            self._note_recovered()

    def _send_batch(self) -> None:
        progress = self._progress
        if not self._inflight:
            with progress.cond:
                start, end = progress.acked, progress.durable
            limit = 1 if start < self._split_until else self._max_rows
            self._inflight = progress.files.read(start, limit, end)
            if progress.abandon.is_set():
                return
            if not self._inflight:
                # The rows are gone from disk (deleted by hand?): nothing can send them.
                self._stop(
                    f"rows {start}..{end - 1} are missing from the spool {progress.spool_dir}"
                )
                return
        rows = self._inflight
        result = self._transport.send(rows)
        self._ack(rows[-1].seq + 1, result)

    def _refused(self, exc: BaseException) -> None:
        """A permanent error about the data: isolate the refused row, keep it, go on."""
        progress = self._progress
        if progress.abandon.is_set():
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
        rejected_path = progress.spool_dir / REJECTED_FILE
        try:
            with open(rejected_path, "a", encoding="utf-8") as handle:
                handle.write(to_json(record) + "\n")
        except OSError as write_error:
            self._stop(f"{describe_error(exc)}; and the refused row cannot be kept: {write_error}")
            return
        progress.failures += 1
        progress.rejected += 1
        if progress.rejected == 1:
            self._report(
                f"the service refused a {row.kind} row (seq {row.seq}): {describe_error(exc)}; "
                f"it is kept in {rejected_path} and delivery goes on (further "
                "refusals are counted and summarised at close)"
            )
        self._ack(row.seq + 1, None)

    def _ack(self, upto: int, run_state: Mapping[str, Any] | None) -> None:
        progress = self._progress
        with progress.cond:
            if progress.abandon.is_set():
                return  # close() gave up on this request: its result is not recorded
            progress.acked = upto
            if run_state is not None:
                progress.run_state = dict(run_state)
            progress.finished = False
            progress.persist_locked()
            progress.cond.notify_all()
        self._inflight = None
        progress.files.drop_acked(upto)

    def _backoff(self, attempt: int, exc: HttpClientError) -> float:
        return backoff_delay(
            attempt,
            min_s=self._min_backoff,
            max_s=self._max_backoff,
            rng=self._rng,
            retry_after=exc.retry_after,
        )

    # --- reporting --------------------------------------------------------------------

    def _report(self, message: str) -> None:
        _log.error("%s: %s", self._progress.name, message)

    def _stop(self, reason: str) -> None:
        progress = self._progress
        with progress.cond:
            if progress.stopped is not None:
                return
            progress.stopped = reason
            progress.failures += 1
            progress.cond.notify_all()
        self._report(
            f"delivery stopped: {reason}. Rows stay in the spool {progress.spool_dir}; fix "
            f"the problem, then run `crucible-train logs sync {progress.spool_dir.parent.parent}`"
        )

    def _note_retry(self, action: str, exc: HttpClientError) -> None:
        self._outage_attempts += 1
        if self._outage_attempts == 1:
            _log.warning(
                "%s: %s failed (%s); retrying with back-off, rows are kept in the spool",
                self._progress.name,
                action,
                exc,
            )

    def _note_recovered(self) -> None:
        if self._outage_attempts:
            _log.info(
                "%s: delivery resumed after %d failed attempts",
                self._progress.name,
                self._outage_attempts,
            )
            self._outage_attempts = 0
