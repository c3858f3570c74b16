"""Unit tests for the shared reliable-delivery machinery (``adapters/_delivery.py``).

The sender is driven through an in-memory :class:`MemoryTransport` that records what it
received and checks idempotency itself (a resent row must equal the first copy); faults
are scripted per call. Pure parts (token bucket, back-off) run on a fake clock.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from crucible_train.adapters import _delivery
from crucible_train.adapters._delivery import (
    MAX_RETRY_AFTER_S,
    REJECTED_FILE,
    STATE_FILE,
    ReliableSender,
    SpooledRow,
    TokenBucket,
    Transport,
    backoff_delay,
    find_spools,
    json_safe,
    read_sink_info,
    spool_dir_for,
    spool_status,
    sync_spool,
    write_sink_info,
)
from crucible_train.entrypoints.cli.logs import discover_spools
from crucible_train.errors import (
    ConfigurationError,
    HttpConnectionError,
    HttpRateLimitError,
    MetricsSinkError,
    PermanentHttpError,
    RetryableHttpError,
)


def _error(cls: type, status: int | None, message: str = "boom", retry_after=None):
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
            raise _error(PermanentHttpError, 400, "value refused: bad row")
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


@pytest.fixture
def make_sender(tmp_path: Path) -> Iterator[Any]:
    made: list[ReliableSender] = []

    def make(transport: Transport, spool: Path | None = None, **options: Any) -> ReliableSender:
        settings: dict[str, Any] = {
            "rate_per_s": 1000.0,
            "burst": 1000,
            "heartbeat_s": None,
            "min_backoff_s": 0.01,
            "max_backoff_s": 0.05,
        }
        settings.update(options)
        sender = ReliableSender(
            transport=transport,
            spool_dir=spool or spool_dir_for(tmp_path / "run", "memory"),
            **settings,
        )
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.close(0, 0.5)


def _submit(sender: ReliableSender, count: int, start: int = 0, **extra: Any) -> None:
    for index in range(start, start + count):
        sender.submit("metrics", {"i": index, **extra})


# --- pure helpers ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2.0, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(0.5)  # one token takes 1/rate seconds
    clock.now += 0.25
    assert bucket.try_acquire() == pytest.approx(0.25)  # half a token there already
    clock.now += 0.25
    assert bucket.try_acquire() == 0.0
    clock.now += 3600  # a long idle period refills only up to the burst
    assert bucket.tokens == pytest.approx(3.0)


def test_token_bucket_sustained_rate_over_many_requests():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=0.5, burst=4, clock=clock)
    sent = 0
    start = clock.now
    while sent < 24:
        wait = bucket.try_acquire()
        if wait:
            clock.now += wait
        else:
            sent += 1
    # 4 free requests, then 20 more at 0.5/s = 40 s: a real rate, not fixed sleeps.
    assert clock.now - start == pytest.approx(40.0)


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_is_exponential_with_jitter_within_bounds(attempt):
    rng = random.Random(attempt)
    low = min(60.0, 1.0 * 2**attempt)
    high = min(60.0, 1.0 * 2**attempt * 1.25)
    delays = [backoff_delay(attempt, min_s=1.0, max_s=60.0, rng=rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    if high > low:  # jitter really varies
        assert len({round(d, 6) for d in delays}) > 100


def test_backoff_caps_and_honours_retry_after():
    rng = random.Random(0)
    assert backoff_delay(10_000, min_s=1.0, max_s=60.0, rng=rng) == 60.0  # no overflow
    assert backoff_delay(0, min_s=1.0, max_s=60.0, rng=rng, retry_after=7.0) == 7.0
    assert backoff_delay(0, min_s=1.0, max_s=60.0, rng=rng, retry_after=0.0) == 0.0
    assert backoff_delay(5, min_s=1.0, max_s=2.0, rng=rng, retry_after=1e9) == MAX_RETRY_AFTER_S
    assert 1.0 <= backoff_delay(0, min_s=1.0, max_s=60.0, rng=rng, retry_after=math.nan) <= 1.25


class Colour(enum.Enum):
    RED = "red"


@attrs.frozen
class Opt:
    name: str
    betas: tuple[float, float]


def test_json_safe_converts_common_config_values():
    value = {
        "np": np.float32(0.5),
        "arr": np.arange(3),
        "path": Path("/tmp/x"),
        "opt": Opt(name="adamw", betas=(0.9, 0.99)),
        "colour": Colour.RED,
        "set": {1},
        1: "int key",
        "nan": math.nan,
        "other": object,
    }
    safe = json_safe(value)
    assert safe["np"] == 0.5
    assert safe["arr"] == [0, 1, 2]
    assert safe["path"] == "/tmp/x"
    assert safe["opt"] == {"name": "adamw", "betas": [0.9, 0.99]}
    assert safe["colour"] == "red"
    assert safe["set"] == [1]
    assert safe["1"] == "int key"
    assert math.isnan(safe["nan"])
    assert isinstance(safe["other"], str)
    json.dumps(safe)  # plain JSON types only


def test_options_are_validated(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        ReliableSender(
            transport=MemoryTransport(),
            spool_dir=tmp_path,
            rate_per_s=0,
            burst=0,
            heartbeat_s=-1,
            max_rows_per_request=0,
        )
    assert len(info.value.problems) == 4


# --- delivery ---------------------------------------------------------------------------


def test_rows_are_delivered_in_order_exactly_once_in_bounded_batches(make_sender):
    transport = MemoryTransport()
    sender = make_sender(transport, max_rows_per_request=100)
    _submit(sender, 2500)
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


def test_a_lost_acknowledgement_resends_the_same_rows(make_sender):
    transport = MemoryTransport()
    transport.plan["send"] = [("after", _error(HttpConnectionError, None, "reset"))]
    sender = make_sender(transport)
    _submit(sender, 5)
    assert sender.close(0, 5) == 0
    assert transport.batches[0] == transport.batches[1]  # the same rows, the same seqs
    assert sorted(transport.delivered) == list(range(5))
    assert transport.conflicts == []


def test_retry_after_is_honoured_and_backoff_grows(make_sender):
    transport = MemoryTransport()
    transport.plan["send"] = [
        _error(HttpRateLimitError, 429, "slow down", retry_after=7.0),
        _error(RetryableHttpError, 503),
        _error(RetryableHttpError, 503),
        _error(RetryableHttpError, 503),
    ]
    delays: list[float] = []
    sender = make_sender(
        transport, sleep=delays.append, rng=random.Random(1), min_backoff_s=1.0, max_backoff_s=60
    )
    _submit(sender, 3)
    assert sender.close(0, 5) == 0
    assert delays[0] == 7.0
    assert 2.0 <= delays[1] <= 2.5  # attempt 1 (the 429 was attempt 0)
    assert 4.0 <= delays[2] <= 5.0
    assert 8.0 <= delays[3] <= 10.0
    assert sorted(transport.delivered) == [0, 1, 2]


def test_start_failures_are_retried_while_rows_keep_spooling(make_sender):
    transport = MemoryTransport()
    transport.plan["start"] = [_error(HttpConnectionError, None, "refused")] * 3
    gate = threading.Event()
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        gate.wait(5)

    sender = make_sender(transport, sleep=sleep)
    _submit(sender, 20)
    assert sender.wait_spooled(5)
    assert spool_status(sender.spool_dir).pending == 20  # on disk before the run exists
    gate.set()
    assert sender.close(0, 5) == 0
    assert transport.calls["start"] == 4
    assert len(delays) >= 3
    assert sorted(transport.delivered) == list(range(20))


def test_auth_error_stops_delivery_keeps_rows_and_is_reported_once(make_sender, caplog):
    transport = MemoryTransport()
    transport.plan["send"] = [_error(PermanentHttpError, 401, "invalid API key")] * 5
    sender = make_sender(transport, name="svc")
    with caplog.at_level(logging.WARNING, logger="crucible_train.adapters._delivery"):
        _submit(sender, 10)
        assert sender.flush(5) == 10  # returns at once: nothing more will be sent
        assert sender.stopped is not None
        _submit(sender, 5, start=10)  # later rows still go to the spool
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
    with caplog.at_level(logging.ERROR, logger="crucible_train.adapters._delivery"):
        _submit(sender, 4)
        sender.submit("metrics", {"i": 4, "bad": True})
        _submit(sender, 5, start=5)
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
    transport.plan["start"] = [_error(PermanentHttpError, 403, "no access")]
    sender = make_sender(transport)
    _submit(sender, 3)
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


def test_flush_times_out_and_close_returns_within_its_timeout(make_sender):
    transport = MemoryTransport()
    transport.block = threading.Event()  # a request that hangs
    sender = make_sender(transport)
    _submit(sender, 7)
    assert sender.flush(0.2) == 7
    started = time.monotonic()
    assert sender.close(0, 0.5) == 7
    assert time.monotonic() - started < 2.0
    transport.block.set()  # let the abandoned request return; it must not record anything
    time.sleep(0.1)
    assert spool_status(sender.spool_dir).pending == 7


def test_only_one_sender_per_spool(make_sender, tmp_path):
    spool = tmp_path / "spool" / "x"
    first = make_sender(MemoryTransport(), spool)
    with pytest.raises(ConfigurationError, match="in use"):
        ReliableSender(
            transport=MemoryTransport(), spool_dir=spool, rate_per_s=1, burst=1, heartbeat_s=None
        )
    first.close(0, 1)
    make_sender(MemoryTransport(), spool)  # free again


def test_seq_and_run_state_survive_a_restart(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [_error(HttpConnectionError, None, "refused")] * 1000
    first = make_sender(down, spool)
    _submit(first, 30)
    assert first.close(3, 0.3) == 30
    status = spool_status(spool)
    assert (status.pending, status.exit_code, status.started) == (30, 3, False)

    up = MemoryTransport()
    second = make_sender(up, spool)
    assert second.pending_count == 30
    _submit(second, 10, start=30)
    assert second.close(0, 5) == 0
    assert sorted(up.delivered) == list(range(40))
    assert [up.delivered[s].payload["i"] for s in range(40)] == list(range(40))

    again = MemoryTransport()
    third = make_sender(again, spool)
    _submit(third, 2, start=40)
    assert third.close(0, 5) == 0
    assert again.start_states == [{"run": "r-1", "count": 40}]  # the persisted run state
    assert sorted(again.delivered) == [40, 41]


def test_a_torn_last_line_is_cut_and_numbering_continues(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [_error(HttpConnectionError, None, "refused")] * 1000
    first = make_sender(down, spool)
    _submit(first, 3)
    first.close(0, 0.2)
    segment = next(spool.glob("rows-*.jsonl"))
    with open(segment, "ab") as handle:
        handle.write(b'{"seq":3,"kind":"metrics","ti')  # a crash mid-write
    up = MemoryTransport()
    second = make_sender(up, spool)
    _submit(second, 1, start=3)
    assert second.close(0, 5) == 0
    assert [up.delivered[s].payload["i"] for s in range(4)] == [0, 1, 2, 3]


def test_segments_roll_and_acknowledged_ones_are_deleted(make_sender, monkeypatch):
    monkeypatch.setattr(_delivery, "_SEGMENT_ROWS", 10)
    transport = MemoryTransport()
    sender = make_sender(transport, max_rows_per_request=7)
    _submit(sender, 35)
    assert sender.close(0, 5) == 0
    assert sorted(transport.delivered) == list(range(35))
    assert [p.name for p in sender.spool_dir.glob("rows-*.jsonl")] == ["rows-000000000030.jsonl"]


def test_a_row_that_cannot_be_stored_is_reported_and_does_not_block_flush(make_sender, caplog):
    transport = MemoryTransport()
    sender = make_sender(transport)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with caplog.at_level(logging.ERROR):
        sender.submit("metrics", loop)
        _submit(sender, 2)
        assert sender.flush(5) == 0
    assert "cannot be stored" in caplog.text
    assert sorted(transport.delivered) == [0, 1]


def test_numpy_scalars_are_spooled_as_plain_numbers(make_sender):
    transport = MemoryTransport()
    sender = make_sender(transport)
    sender.submit("metrics", {"x": np.float32(0.5), "n": np.int64(3), "b": np.bool_(True)})
    sender.close(0, 5)
    assert transport.delivered[0].payload == {"x": 0.5, "n": 3, "b": True}


# --- spool discovery and sync ---------------------------------------------------------


def test_sink_info_and_discovery(tmp_path):
    run = tmp_path / "run"
    write_sink_info(spool_dir_for(run, "wandb"), "wandb", {"run_id": "abc", "path": Path("/x")})
    write_sink_info(spool_dir_for(run, "neptune"), "neptune", {"custom_id": "c"})
    (run / "spool" / "junk").mkdir()
    assert read_sink_info(run / "spool" / "wandb") == {
        "run_id": "abc",
        "path": "/x",
        "kind": "wandb",
    }
    expected = [("neptune", run / "spool" / "neptune"), ("wandb", run / "spool" / "wandb")]
    assert find_spools(run) == expected
    assert discover_spools(run) == expected  # logs_sync's copy of the convention agrees
    assert find_spools(tmp_path / "nothing") == []
    with pytest.raises(ConfigurationError, match="not a sink spool"):
        read_sink_info(run / "spool" / "junk")


def test_sync_spool_delivers_and_finishes_with_the_recorded_exit_code(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [_error(HttpConnectionError, None, "refused")] * 1000
    sender = make_sender(down, spool)
    _submit(sender, 12)
    assert sender.close(2, 0.2) == 12
    up = MemoryTransport()
    assert sync_spool(spool, up, timeout=5) == 0
    assert sorted(up.delivered) == list(range(12))
    assert up.finished == [2]
    untouched = MemoryTransport()
    assert sync_spool(spool, untouched, timeout=5) == 0  # finished and empty: no requests
    assert untouched.calls["start"] == 0


def test_sync_spool_marks_a_run_whose_process_died_as_failed(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [_error(HttpConnectionError, None, "refused")] * 1000
    sender = make_sender(down, spool)
    _submit(sender, 4)
    assert sender.wait_spooled(5)
    # Simulate a crash: the state on disk is what a dead process leaves (no exit code).
    state = json.loads((spool / STATE_FILE).read_text())
    sender.close(0, 0.2)
    (spool / STATE_FILE).write_text(json.dumps(state))
    assert spool_status(spool).exit_code is None
    up = MemoryTransport()
    assert sync_spool(spool, up, timeout=5) == 0
    assert up.finished == [_delivery.UNKNOWN_EXIT_CODE] == [1]
    assert sorted(up.delivered) == [0, 1, 2, 3]


def test_close_with_no_time_still_spools_every_row(make_sender):
    down = MemoryTransport()
    down.plan["start"] = [_error(HttpConnectionError, None, "refused")] * 1000
    sender = make_sender(down)
    _submit(sender, 5000)
    assert sender.close(0, 0.0) == 5000
    assert spool_status(sender.spool_dir).pending == 5000
