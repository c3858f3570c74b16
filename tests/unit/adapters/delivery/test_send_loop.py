"""The sender thread's failure policy (``delivery/send_loop.py``).

Retries with back-off, stops on errors that would fail forever, sets refused rows aside,
resends rows whose acknowledgement was lost, and sends heartbeats only when idle.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time

from crucible_train.adapters.delivery.constants import REJECTED_FILE
from crucible_train.adapters.delivery.spool import spool_status
from crucible_train.errors import (
    HttpConnectionError,
    HttpRateLimitError,
    PermanentHttpError,
    RetryableHttpError,
)

from delivery_fakes import MemoryTransport, http_error, submit_rows


def test_a_lost_acknowledgement_resends_the_same_rows(make_sender):
    transport = MemoryTransport()
    transport.plan["send"] = [("after", http_error(HttpConnectionError, None, "reset"))]
    sender = make_sender(transport)
    submit_rows(sender, 5)
    assert sender.close(0, 5) == 0
    assert transport.batches[0] == transport.batches[1]  # the same rows, the same seqs
    assert sorted(transport.delivered) == list(range(5))
    assert transport.conflicts == []


def test_retry_after_is_honoured_and_backoff_grows(make_sender):
    transport = MemoryTransport()
    transport.plan["send"] = [
        http_error(HttpRateLimitError, 429, "slow down", retry_after=7.0),
        http_error(RetryableHttpError, 503),
        http_error(RetryableHttpError, 503),
        http_error(RetryableHttpError, 503),
    ]
    delays: list[float] = []
    sender = make_sender(
        transport, sleep=delays.append, rng=random.Random(1), min_backoff_s=1.0, max_backoff_s=60
    )
    submit_rows(sender, 3)
    assert sender.close(0, 5) == 0
    assert delays[0] == 7.0
    assert 2.0 <= delays[1] <= 2.5  # attempt 1 (the 429 was attempt 0)
    assert 4.0 <= delays[2] <= 5.0
    assert 8.0 <= delays[3] <= 10.0
    assert sorted(transport.delivered) == [0, 1, 2]


def test_start_failures_are_retried_while_rows_keep_spooling(make_sender):
    transport = MemoryTransport()
    transport.plan["start"] = [http_error(HttpConnectionError, None, "refused")] * 3
    gate = threading.Event()
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        gate.wait(5)

    sender = make_sender(transport, sleep=sleep)
    submit_rows(sender, 20)
    assert sender.wait_spooled(5)
    assert spool_status(sender.spool_dir).pending == 20  # on disk before the run exists
    gate.set()
    assert sender.close(0, 5) == 0
    assert transport.calls["start"] == 4
    assert len(delays) >= 3
    assert sorted(transport.delivered) == list(range(20))


def test_auth_error_stops_delivery_keeps_rows_and_is_reported_once(make_sender, caplog):
    transport = MemoryTransport()
    transport.plan["send"] = [http_error(PermanentHttpError, 401, "invalid API key")] * 5
    sender = make_sender(transport, name="svc")
    with caplog.at_level(logging.WARNING, logger="crucible_train.adapters.delivery"):
        submit_rows(sender, 10)
        assert sender.flush(5) == 10  # returns at once: nothing more will be sent
        assert sender.stopped is not None
        submit_rows(sender, 5, start=10)  # later rows still go to the spool
        assert sender.close(0, 1) == 15
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "invalid API key" in errors[0].getMessage()
    assert "crucible-train logs sync" in errors[0].getMessage()
    assert transport.calls["send"] == 1
    assert transport.finished == []
    assert sender.failures == 1
    assert spool_status(sender.spool_dir).pending == 15
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("15 rows are still spooled" in m and "logs sync" in m for m in warnings)


def test_a_refused_row_is_isolated_kept_and_delivery_goes_on(make_sender, caplog):
    transport = MemoryTransport()
    sender = make_sender(transport)
    with caplog.at_level(logging.ERROR, logger="crucible_train.adapters.delivery"):
        submit_rows(sender, 4)
        sender.submit("metrics", {"i": 4, "bad": True})
        submit_rows(sender, 5, start=5)
        sender.submit("metrics", {"i": 10, "bad": True})
        assert sender.close(0, 5) == 0
    assert sorted(transport.delivered) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    rejected = [
        json.loads(line) for line in (sender.spool_dir / REJECTED_FILE).read_text().splitlines()
    ]
    assert [r["seq"] for r in rejected] == [4, 10]
    assert rejected[0]["status"] == 400
    assert "bad row" in rejected[0]["error"]
    assert sender.failures == 2
    assert sender.rejected_count == 2
    assert transport.finished == [0]
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_permanent_start_error_stops(make_sender, caplog):
    transport = MemoryTransport()
    transport.plan["start"] = [http_error(PermanentHttpError, 403, "no access")]
    sender = make_sender(transport)
    submit_rows(sender, 3)
    with caplog.at_level(logging.ERROR):
        assert sender.close(0, 2) == 3
    assert "no access" in sender.stopped
    assert transport.calls["send"] == 0


def test_heartbeat_is_sent_only_when_idle(make_sender):
    transport = MemoryTransport()
    sender = make_sender(transport, heartbeat_s=0.1)
    deadline = time.monotonic() + 5
    while transport.calls["heartbeat"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert transport.calls["heartbeat"] >= 2
    assert sender.close(0, 2) == 0
