"""Neptune adapters (adapter layer, HTTP port only; no ``neptune`` package needed).

Speaks the neptune-client 1.x REST protocol to a self-hosted Neptune server: the hosted
service shut down in March 2026, so there is no default address.
"""

from __future__ import annotations

from crucible_train.adapters.neptune.metrics_sink import NeptuneMetricsSink

__all__ = ["NeptuneMetricsSink"]
