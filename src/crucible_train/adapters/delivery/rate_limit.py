"""Rate limiting for the sender (adapter layer): a token bucket over a monotonic clock."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate_per_s``; one token per request.

    Not thread-safe (the sender thread owns it).

    Args:
        rate_per_s: tokens added per second (sustained requests per second).
        burst: capacity, and the number of tokens at the start.
        clock: monotonic seconds.
    """

    def __init__(
        self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = float(rate_per_s)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now (after refilling)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)

    def try_acquire(self) -> float:
        """Take one token if there is one.

        Returns:
            0.0 when a token was taken; otherwise the seconds until one will be available
            (nothing is taken: call again after waiting).
        """
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate
