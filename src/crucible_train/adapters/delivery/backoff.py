"""Back-off between retries (adapter layer): exponential with jitter, or the server's word.

The sender waits ``min(max_s, min_s * 2**attempt * U[1, 1.25])`` seconds before retrying
a request that failed with a retryable error, or exactly the server's ``Retry-After``
(capped at :data:`~crucible_train.adapters.delivery.constants.MAX_RETRY_AFTER_S`).
"""

from __future__ import annotations

import math
import random

from crucible_train.adapters.delivery.constants import MAX_RETRY_AFTER_S

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    *,
    min_s: float,
    max_s: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    Args:
        attempt: failures so far minus one (0 for the first retry).
        min_s: the first delay (before jitter).
        max_s: the longest delay.
        rng: jitter source.
        retry_after: the server's ``Retry-After`` in seconds, which wins when set (capped
            at :data:`~crucible_train.adapters.delivery.constants.MAX_RETRY_AFTER_S`).

    Returns:
        ``retry_after`` when given, else ``min(max_s, min_s * 2**attempt * U[1, 1.25])``.
    """
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        return min(float(retry_after), MAX_RETRY_AFTER_S)
    # Cap the exponent: 2**1100 overflows a float, and the result is max_s long before.
    exponent = min(max(attempt, 0), 64)
    return min(max_s, min_s * (2.0**exponent) * rng.uniform(1.0, 1.25))
