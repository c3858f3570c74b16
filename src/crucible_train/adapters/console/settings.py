"""Settings of the console metrics sink backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import greater_than

__all__ = ["ConsoleMetricsSinkSettings"]


@attrs.frozen(kw_only=True)
class ConsoleMetricsSinkSettings:
    """``metrics.console``: a rich table per step on stderr.

    Args:
        every: print the table of every N-th logged step (1: all of them).
        width: console width in characters; ``None`` detects the terminal's.
    """

    every: int = attrs.field(default=1, validator=greater_than(0))
    width: int | None = attrs.field(default=None, validator=greater_than(0))
