"""Settings of the ``requests`` HTTP client backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import finite, greater_than, not_blank

__all__ = ["RequestsHttpSettings"]


@attrs.frozen(kw_only=True)
class RequestsHttpSettings:
    """``http.requests``: blocking HTTP over a pooled ``requests`` session.

    Args:
        pool_size: connections kept open per host.
        default_timeout: seconds for a request that gives no timeout of its own.
        user_agent: the ``User-Agent`` header of every request.
    """

    pool_size: int = attrs.field(default=10, validator=greater_than(0))
    default_timeout: float = attrs.field(default=30.0, validator=[finite, greater_than(0)])
    user_agent: str = attrs.field(default="crucible-train/0.2.0", validator=not_blank)
