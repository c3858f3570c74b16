"""The sender's caller-side API (``delivery/sender.py``): submit, flush, close, restart.

Driven through an in-memory transport (``delivery_fakes.MemoryTransport``).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from crucible_train.adapters.delivery.constants import STATE_FILE
from crucible_train.adapters.delivery.spool import spool_status
from crucible_train.errors import (
    HttpConnectionError,
    MetricsSinkError,
)

from delivery_fakes import MemoryTransport, http_error, submit_rows


def test_rows_are_delivered_in_order_exactly_once_in_bounded_batches(make_sender):
    transport = MemoryTransport()
    sender = make_sender(transport, max_rows_per_request=100)
    submit_rows(sender, 2500)
    assert sender.flush(10) == 0
    assert sorted(transport.delivered) == list(range(2500))
    assert [row.payload["i"] for _, row in sorted(transport.delivered.items())] == list(range(2500))
    assert all(len(batch) <= 100 for batch in transport.batches)
    assert sender.close(0, 5) == 0
    assert transport.finished == [0]
    assert transport.conflicts == []
    state = json.loads((sender.spool_dir / STATE_FILE).read_text())
    assert state["acked"] == 2500
    assert state["finished"] is True
    assert state["exit_code"] == 0
    assert state["run"] == {"run": "r-1", "count": 2500}


def test_submit_is_refused_after_close(make_sender):
    sender = make_sender(MemoryTransport())
    sender.close(0, 1)
    with pytest.raises(MetricsSinkError, match="close"):
        sender.submit("metrics", {})
    assert sender.close(0, 1) == 0  # idempotent


def test_flush_times_out_and_close_returns_within_its_timeout(make_sender):
    transport = MemoryTransport()
    transport.block = threading.Event()  # a request that hangs
    sender = make_sender(transport)
    submit_rows(sender, 7)
    assert sender.flush(0.2) == 7
    started = time.monotonic()
    assert sender.close(0, 0.5) == 7
    assert time.monotonic() - started < 2.0
    transport.block.set()  # let the abandoned request return; it must not record anything
    time.sleep(0.1)
    assert spool_status(sender.spool_dir).pending == 7


def test_seq_and_run_state_survive_a_restart(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [http_error(HttpConnectionError, None, "refused")] * 1000
    first = make_sender(down, spool)
    submit_rows(first, 30)
    assert first.close(3, 0.3) == 30
    status = spool_status(spool)
    assert (status.pending, status.exit_code, status.started) == (30, 3, False)

    up = MemoryTransport()
    second = make_sender(up, spool)
    assert second.pending_count == 30
    submit_rows(second, 10, start=30)
    assert second.close(0, 5) == 0
    assert sorted(up.delivered) == list(range(40))
    assert [up.delivered[s].payload["i"] for s in range(40)] == list(range(40))

    again = MemoryTransport()
    third = make_sender(again, spool)
    submit_rows(third, 2, start=40)
    assert third.close(0, 5) == 0
    assert again.start_states == [{"run": "r-1", "count": 40}]  # the persisted run state
    assert sorted(again.delivered) == [40, 41]


def test_close_with_no_time_still_spools_every_row(make_sender):
    down = MemoryTransport()
    down.plan["start"] = [http_error(HttpConnectionError, None, "refused")] * 1000
    sender = make_sender(down)
    submit_rows(sender, 5000)
    assert sender.close(0, 0.0) == 5000
    assert spool_status(sender.spool_dir).pending == 5000
