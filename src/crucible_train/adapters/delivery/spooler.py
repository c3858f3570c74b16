"""The spooler thread (adapter layer): submitted rows → numbered lines on disk.

The caller's thread only puts rows on an in-memory queue. This thread takes them off in
batches, gives each its sequence number, writes them to the spool's segments and flushes
after every batch, so rows survive a crash of the process or an outage of the service as
soon as they are spooled (typically within a millisecond). The network never holds it
up; when the disk refuses, rows wait in memory and are written once it recovers.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from typing import Any, Final

from crucible_train.adapters.delivery.constants import DRAIN_MAX
from crucible_train.adapters.delivery.encoding import to_json
from crucible_train.adapters.delivery.progress import DeliveryProgress

__all__ = ["Spooler"]

_log = logging.getLogger(__name__)

_STOP_ITEM: Final = object()  # queue sentinel: the spooler exits after draining


class Spooler:
    """The submission queue, and the spooler thread's body (:meth:`run`).

    Args:
        progress: the sender's shared state (its ``files`` receive the rows).
    """

    def __init__(self, progress: DeliveryProgress) -> None:
        self._progress = progress
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error_reported = False

    def put(self, kind: str, payload: Mapping[str, Any], submitted: float) -> None:
        """Queue one row (O(1), no I/O); ``submitted`` is its Unix time."""
        self._queue.put((kind, payload, submitted))

    def stop(self) -> None:
        """Ask :meth:`run` to write what is queued, then return."""
        self._queue.put(_STOP_ITEM)

    def run(self) -> None:
        """The thread's body: write queued rows until :meth:`stop` (or a broken disk at close)."""
        progress = self._progress
        files = progress.files
        held: list[bytes] = []  # rows serialised but not yet written (disk errors)
        stop = False
        while not stop or held:
            items: list[Any] = []
            if not stop:
                items.append(self._queue.get())
                while len(items) < DRAIN_MAX:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            for item in items:
                if item is _STOP_ITEM:
                    stop = True
                    continue
                line = self._serialise(item, files.next_seq + len(held))
                if line is not None:
                    held.append(line)
            if not held:
                with progress.cond:  # only dropped rows: flush targets moved, wake waiters
                    progress.cond.notify_all()
                continue
            try:
                files.append(held)
            except OSError as exc:
                if not self._error_reported:
                    self._error_reported = True
                    _log.error(
                        "%s: cannot write the spool %s (%s); rows are kept in memory and "
                        "written when the disk recovers",
                        progress.name,
                        progress.spool_dir,
                        exc,
                    )
                if stop or progress.abandon.wait(1.0):
                    return  # closing while the disk is broken: nothing else can be done
                continue
            held = []
            with progress.cond:
                progress.durable = files.next_seq
                progress.cond.notify_all()

    def _serialise(self, item: tuple[str, Mapping[str, Any], float], seq: int) -> bytes | None:
        kind, payload, submitted = item
        try:
            text = to_json({"seq": seq, "kind": kind, "time": submitted, "payload": payload})
        except (TypeError, ValueError, RecursionError) as exc:
            # Sinks validate rows before submitting, so this is a bug; say so loudly. The
            # row gets no seq, and flush must not wait for it.
            self._progress.failures += 1
            self._progress.dropped += 1
            _log.error(
                "%s: a %s row cannot be stored and is dropped: %s", self._progress.name, kind, exc
            )
            return None
        return (text + "\n").encode("utf-8")
