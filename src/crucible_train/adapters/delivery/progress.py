"""What the sender's three threads share (adapter layer): watermarks and outcomes.

The caller's thread (:class:`~crucible_train.adapters.delivery.sender.ReliableSender`),
the spooler thread and the sender thread each own some of these fields and read the
others; one condition guards them and wakes whoever waits for a change. Writing
``state.json`` happens here, with the condition held, so the file always shows one
consistent moment.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from crucible_train.adapters.delivery.constants import STATE_FILE
from crucible_train.adapters.delivery.segments import SpoolFiles
from crucible_train.adapters.delivery.spool import write_state

__all__ = ["DeliveryProgress"]

_log = logging.getLogger(__name__)


class DeliveryProgress:
    """The shared state of one sender (mutable; guard writes with :attr:`cond`).

    Attributes:
        spool_dir: the spool directory.
        name: how log messages name the service.
        files: the spool's row segments.
        cond: guards the fields below and signals their changes.
        abandon: set by ``close`` past its deadline: no thread may touch the spool after.
        durable: rows below this seq are on disk (the spooler advances it).
        acked: rows below this seq are acknowledged (the sender advances it).
        dropped: submitted rows that could not be serialised (the spooler counts them).
        failures: permanent failures reported so far.
        run_state: the transport's persisted run state.
        recorded_exit_code: the exit code given to ``close`` in this session.
        finished: the run was marked finished after the last row.
        rejected: rows the service refused, kept in ``rejected.jsonl``.
        stopped: why delivery stopped for good, or ``None``.
        started: the remote run was created or resumed in this process.
        finish_code: the exit code to finish the run with, once ``close`` asked for it.
        sender_done: the sender thread has exited.
    """

    def __init__(
        self,
        *,
        spool_dir: Path,
        name: str,
        files: SpoolFiles,
        acked: int,
        run_state: dict[str, Any],
        rejected: int,
    ) -> None:
        self.spool_dir = spool_dir
        self.name = name
        self.files = files
        self.cond = threading.Condition()
        self.abandon = threading.Event()
        self.durable = files.next_seq
        self.acked = acked
        self.dropped = 0
        self.failures = 0
        self.run_state = run_state
        # A new session has no exit code yet: the previous session's must not be used by
        # `logs sync` if this one dies (it is cleared on disk before any row).
        self.recorded_exit_code: int | None = None
        # A reopened spool belongs to a run that goes on: whatever an earlier session
        # finished must be finished again after this session's rows, so close() must not
        # take the old flag as "done" and return before they are sent.
        self.finished = False
        self.rejected = rejected
        self.stopped: str | None = None
        self.started = False
        self.finish_code: int | None = None
        self.sender_done = False

    def persist_locked(self) -> None:
        """Write ``state.json`` (call with :attr:`cond` held)."""
        try:
            write_state(
                self.spool_dir,
                next_seq=max(self.files.next_seq, self.acked),
                acked=self.acked,
                run=self.run_state,
                exit_code=self.recorded_exit_code,
                finished=self.finished,
                rejected=self.rejected,
            )
        except OSError as exc:
            # The rows are safe in the segments; a stale watermark only means resending.
            _log.error("%s: cannot write %s: %s", self.name, self.spool_dir / STATE_FILE, exc)
