"""Weights & Biases adapters (adapter layer, W&B wire protocol over the HTTP port).

Plain HTTP through :class:`~crucible_train.ports.http.HttpClient`: the ``wandb`` package
is never imported (this package is ``crucible_train.adapters.wandb``, which cannot shadow
the top-level ``wandb``).

Modules: ``metrics_sink`` (the sink: checks, spooling, the run's identity), ``transport``
(the wire protocol and the API and UI addresses) and ``settings`` (its ``containers.yaml``
block).
"""

from __future__ import annotations

from crucible_train.adapters.wandb.metrics_sink import DEFAULT_BASE_URL, WandbMetricsSink
from crucible_train.adapters.wandb.transport import WandbTransport, api_to_app_url

__all__ = ["DEFAULT_BASE_URL", "WandbMetricsSink", "WandbTransport", "api_to_app_url"]
