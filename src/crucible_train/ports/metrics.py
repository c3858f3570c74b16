"""Port: a destination for run metrics (files, console, W&B, Neptune ...).

A new adapter must guarantee: ``log_metrics`` returns quickly (a network sink hands rows
to a background sender) and never drops a row silently; a delivery failure it cannot
recover from is raised as :class:`~crucible_train.errors.MetricsSinkError` from a later
call or from ``close``, or reported once through the standard ``logging`` module;
secrets never appear in what it writes. Fan-out to several sinks lives in core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["MetricValue", "MetricsSink"]

MetricValue = float | int | bool | str
"""A metric is a number (NaN and infinities allowed) or a short string."""


@runtime_checkable
class MetricsSink(Protocol):
    """Records hyper-parameters, per-step metrics and long texts for one run.

    ``log_hparams`` and ``log_metrics`` are required; the other methods have no-op
    defaults for sinks to which they mean nothing. Calls come from one thread at a time.
    """

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Record the run's configuration (JSON-safe, secrets already redacted)."""
        ...

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Record ``metrics`` at training ``step`` (``None``: the sink's next step)."""
        ...

    def log_long_text(self, key: str, text: str) -> None:
        """Record a long text (a sample transcript, a rendered prompt) under ``key``."""
        return None

    def sync(self) -> None:
        """Push everything logged so far; blocks until delivered or spooled."""
        return None

    def get_url(self) -> str | None:
        """Where a person can look at the run, or ``None``."""
        return None

    def close(self, exit_code: int = 0) -> None:
        """Flush, mark the run finished and release resources; idempotent.

        Args:
            exit_code: 0 when the run succeeded; any other value marks it failed on
                services that track run state (W&B ``exitcode``, Neptune ``sys/failed``).

        Logging after close is an error.
        """
        return None
