"""Noop metrics sink (adapter layer, no technology): validates, then discards.

Discarding metrics is a meaningful no-op, but the sink still checks every call the way a
real sink would, so a bug (a negative step, a non-string key, logging after ``close``)
fails in tests that run on noop adapters instead of first surfacing on W&B.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible_train.adapters._metrics_input import (
    check_hparams,
    check_metrics,
    check_open,
    check_step,
    check_text,
)
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = ["NoopMetricsSink"]


class NoopMetricsSink(MetricsSink):
    """Accepts and discards metrics; refuses malformed calls and calls after ``close``.

    Errors are :class:`~crucible_train.errors.MetricsSinkError`. Calls come from one
    thread at a time, as the port specifies, so no lock is needed.
    """

    def __init__(self) -> None:
        self._closed = False

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Check that ``config`` is a mapping with string keys, then discard it."""
        check_open(self._closed, "log_hparams")
        check_hparams(config)

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Check ``metrics`` (string keys, number or string values) and ``step``, then discard."""
        check_open(self._closed, "log_metrics")
        check_step(step)
        check_metrics(metrics)

    def log_long_text(self, key: str, text: str) -> None:
        """Check that ``key`` and ``text`` are strings, then discard them."""
        check_open(self._closed, "log_long_text")
        check_text(key, text)

    def sync(self) -> None:
        """Nothing is buffered, so there is nothing to push."""

    def get_url(self) -> str | None:
        """``None``: nothing is recorded anywhere."""
        return None

    def close(self, exit_code: int = 0) -> None:
        """Mark the sink closed; later ``log_*`` calls raise. Idempotent."""
        self._closed = True
