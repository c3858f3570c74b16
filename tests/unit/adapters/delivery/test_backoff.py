"""Back-off delays (``delivery/backoff.py``): exponential, jittered, capped, Retry-After."""

from __future__ import annotations

import math
import random

import pytest

from crucible_train.adapters.delivery.backoff import backoff_delay
from crucible_train.adapters.delivery.constants import MAX_RETRY_AFTER_S


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
