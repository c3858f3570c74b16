"""Test doubles for the delivery package: an in-memory transport, scripted errors, a clock.

:class:`MemoryTransport` records what it received and checks idempotency itself (a
resent row must equal the first copy); faults are scripted per call.
"""

from __future__ import annotations

import threading
from typing import Any

from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.transport import SpooledRow, Transport
from crucible_train.errors import PermanentHttpError


def http_error(cls: type, status: int | None, message: str = "boom", retry_after=None):
    """An HTTP port error of type ``cls`` with ``status`` and ``retry_after`` set."""
    error = cls(message)
    error.status = status
    error.retry_after = retry_after
    return error


class MemoryTransport(Transport):
    """Records deliveries; ``plan[method]`` lists exceptions to raise on the next calls.

    A plan entry ``("after", exc)`` raises *after* delivering (a lost acknowledgement).
    """

    def __init__(self) -> None:
        self.plan: dict[str, list[Any]] = {"start": [], "send": [], "heartbeat": [], "finish": []}
        self.calls: dict[str, int] = {"start": 0, "send": 0, "heartbeat": 0, "finish": 0}
        self.start_states: list[dict[str, Any]] = []
        self.delivered: dict[int, SpooledRow] = {}
        self.batches: list[list[int]] = []
        self.finished: list[int] = []
        self.conflicts: list[int] = []
        self.block: threading.Event | None = None
        self.count = 0

    def _fault(self, method: str) -> Any:
        self.calls[method] += 1
        if self.plan[method]:
            return self.plan[method].pop(0)
        return None

    def start(self, state):
        fault = self._fault("start")
        if fault is not None:
            raise fault
        self.start_states.append(dict(state))
        self.count = int(state.get("count", 0))
        return {**state, "run": "r-1", "count": self.count}

    def send(self, rows):
        if self.block is not None:
            self.block.wait(10)
        fault = self._fault("send")
        if fault is not None and not isinstance(fault, tuple):
            raise fault
        if any(row.payload.get("bad") for row in rows):
            raise http_error(PermanentHttpError, 400, "value refused: bad row")
        seqs = [row.seq for row in rows]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        for row in rows:
            if row.seq in self.delivered and self.delivered[row.seq] != row:
                self.conflicts.append(row.seq)
            self.delivered[row.seq] = row
        self.batches.append(seqs)
        if isinstance(fault, tuple):
            raise fault[1]
        self.count += len(rows)
        return {"run": "r-1", "count": self.count}

    def heartbeat(self):
        fault = self._fault("heartbeat")
        if fault is not None:
            raise fault

    def finish(self, exit_code):
        fault = self._fault("finish")
        if fault is not None:
            raise fault
        self.finished.append(exit_code)


def submit_rows(sender: ReliableSender, count: int, start: int = 0, **extra: Any) -> None:
    """Submit ``count`` metrics rows ``{"i": start..}`` (plus ``extra``)."""
    for index in range(start, start + count):
        sender.submit("metrics", {"i": index, **extra})


class FakeClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now
