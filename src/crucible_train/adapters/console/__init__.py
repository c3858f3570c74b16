"""Console adapters (adapter layer, ``rich``): the pretty-printing metrics sink."""

from __future__ import annotations

from crucible_train.adapters.console.metrics_sink import ConsoleMetricsSink

__all__ = ["ConsoleMetricsSink"]
