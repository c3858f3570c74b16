"""Settings of every ``noop`` backend (adapter layer): there are none."""

from __future__ import annotations

import attrs

__all__ = ["NoopSettings"]


@attrs.frozen(kw_only=True)
class NoopSettings:
    """Settings of every ``noop`` backend: there are none."""
