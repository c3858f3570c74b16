"""Noop metrics sink (adapter layer, no technology): validates, then discards.

Discarding metrics is a meaningful no-op, but the sink still checks every call the way a
real sink would, so a bug (a negative step, a non-string key, logging after ``close``)
fails in tests that run on noop adapters instead of first surfacing on W&B.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from crucible_train.errors import MetricsSinkError
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = ["NoopMetricsSink"]


def _check_step(step: object) -> None:
    if step is None:
        return
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise MetricsSinkError(
            f"metrics step is {step!r} ({type(step).__name__}); use a whole number >= 0 or None"
        )
    if step < 0:
        raise MetricsSinkError(f"metrics step is {step}; use a whole number >= 0 or None")


def _check_metrics(metrics: object) -> None:
    if not isinstance(metrics, Mapping):
        raise MetricsSinkError(
            f"metrics must be a mapping of name to value, got {type(metrics).__name__}"
        )
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise MetricsSinkError(f"metric name {key!r} is a {type(key).__name__}; use a string")
        # numbers.Real covers int, float, bool and numpy scalars; NaN and inf are allowed.
        if not isinstance(value, numbers.Real | str):
            raise MetricsSinkError(
                f"metric {key!r} is a {type(value).__name__}; use a number or a short string"
            )


class NoopMetricsSink(MetricsSink):
    """Accepts and discards metrics; refuses malformed calls and calls after ``close``.

    Errors are :class:`~crucible_train.errors.MetricsSinkError`. Calls come from one
    thread at a time, as the port specifies, so no lock is needed.
    """

    def __init__(self) -> None:
        self._closed = False

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise MetricsSinkError(f"{operation} called after close(); the metrics sink is closed")

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Check that ``config`` is a mapping with string keys, then discard it."""
        self._check_open("log_hparams")
        if not isinstance(config, Mapping):
            raise MetricsSinkError(
                f"hyper-parameters must be a mapping, got {type(config).__name__}"
            )
        bad = [key for key in config if not isinstance(key, str)]
        if bad:
            raise MetricsSinkError(f"hyper-parameter names must be strings, got {bad[0]!r}")

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Check ``metrics`` (string keys, number or string values) and ``step``, then discard."""
        self._check_open("log_metrics")
        _check_step(step)
        _check_metrics(metrics)

    def log_long_text(self, key: str, text: str) -> None:
        """Check that ``key`` and ``text`` are strings, then discard them."""
        self._check_open("log_long_text")
        if not isinstance(key, str) or not isinstance(text, str):
            raise MetricsSinkError(
                f"log_long_text needs a string key and text, got {type(key).__name__} "
                f"and {type(text).__name__}"
            )

    def sync(self) -> None:
        """Nothing is buffered, so there is nothing to push."""

    def get_url(self) -> str | None:
        """``None``: nothing is recorded anywhere."""
        return None

    def close(self, exit_code: int = 0) -> None:
        """Mark the sink closed; later ``log_*`` calls raise. Idempotent."""
        self._closed = True
