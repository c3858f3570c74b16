"""Recording fakes of our ports: in-memory implementations that keep what they were given,
so tests assert on end state instead of on calls (cosmicpython style)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible_train.ports.metrics import MetricsSink, MetricValue


class RecordingMetricsSink(MetricsSink):
    """Keeps every row, config and text it receives; can be told to fail."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.rows: list[tuple[int | None, dict[str, MetricValue]]] = []
        self.hparams: list[dict[str, Any]] = []
        self.texts: dict[str, str] = {}
        self.syncs = 0
        self.closed = 0
        self.exit_codes: list[int] = []
        self.fail_with = fail_with
        self.url: str | None = None

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        self._maybe_fail()
        self.hparams.append(dict(config))

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        self._maybe_fail()
        self.rows.append((step, dict(metrics)))

    def log_long_text(self, key: str, text: str) -> None:
        self._maybe_fail()
        self.texts[key] = text

    def sync(self) -> None:
        self._maybe_fail()
        self.syncs += 1

    def get_url(self) -> str | None:
        return self.url

    def close(self, exit_code: int = 0) -> None:
        self.closed += 1
        self.exit_codes.append(exit_code)
