"""The token bucket (``delivery/rate_limit.py``) on a fake clock."""

from __future__ import annotations

import pytest

from crucible_train.adapters.delivery.rate_limit import TokenBucket

from delivery_fakes import FakeClock


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
