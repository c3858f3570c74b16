"""FakeMetricsSink: keeps every row, config and text; checks calls as the real sinks do."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crucible_train.adapters._metrics_input import (
    check_hparams,
    check_metrics,
    check_open,
    check_step,
    check_text,
)
from crucible_train.ports.http import HttpClient
from crucible_train.ports.metrics import MetricsSink, MetricValue

Row = tuple[int | None, dict[str, MetricValue]]


class FakeMetricsSink(MetricsSink):
    """A metrics sink in memory.

    Calls are checked with the adapters' own rules (a bad step or name, logging after
    ``close``: ``MetricsSinkError``), then recorded: :attr:`rows` (``(step, metrics)``),
    :attr:`hparams`, :attr:`texts`, :attr:`syncs`, :attr:`closed` (how many times) and
    :attr:`exit_codes`.

    Args:
        fail_with: every logging call and ``sync`` raise this (``close`` never does).
        on_metrics: called with ``(step, metrics)`` before a row is recorded; if it
            raises, the row is not recorded (a test can stop or kill a run at a step).
        url: what :meth:`get_url` returns.
        http: the HTTP client it was built with (as the W&B and Neptune sinks are).
        run_dir: the run directory it was built with.
        settings: the settings it was built with.
        on_close: called with the sink at each ``close``, before it is counted.
    """

    def __init__(
        self,
        *,
        fail_with: Exception | None = None,
        on_metrics: Callable[[int | None, Mapping[str, MetricValue]], None] | None = None,
        url: str | None = None,
        http: HttpClient | None = None,
        run_dir: str | None = None,
        settings: Mapping[str, Any] | None = None,
        on_close: Callable[[FakeMetricsSink], None] | None = None,
    ) -> None:
        self.rows: list[Row] = []
        self.hparams: list[dict[str, Any]] = []
        self.texts: dict[str, str] = {}
        self.syncs = 0
        self.closed = 0
        self.exit_codes: list[int] = []
        self.fail_with = fail_with
        self.on_metrics = on_metrics
        self.url = url
        self.http = http
        self.run_dir = run_dir
        self.settings: dict[str, Any] = dict(settings or {})
        self.on_close = on_close

    @classmethod
    def builder(
        cls,
        built: list[FakeMetricsSink],
        *,
        on_close: Callable[[FakeMetricsSink], None] | None = None,
    ) -> Callable[..., FakeMetricsSink]:
        """A stand-in for a sink adapter class in the wiring diagram (``extra_backends``):
        each call builds a sink from the injected ``http``/``run_dir`` and the settings
        (and ``on_close``), and appends it to ``built``."""

        def build(
            *, http: HttpClient | None = None, run_dir: str | None = None, **settings: Any
        ) -> FakeMetricsSink:
            sink = cls(http=http, run_dir=run_dir, settings=settings, on_close=on_close)
            built.append(sink)
            return sink

        build.__name__ = f"{cls.__name__}.builder"
        return build

    def _check(self, operation: str) -> None:
        check_open(self.closed > 0, operation, "fake sink")
        if self.fail_with is not None:
            raise self.fail_with

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Records ``config``."""
        self._check("log_hparams")
        self.hparams.append(dict(check_hparams(config)))

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Records ``(step, metrics)`` after :attr:`on_metrics` saw them."""
        self._check("log_metrics")
        checked_step = check_step(step)
        checked = dict(check_metrics(metrics))
        if self.on_metrics is not None:
            self.on_metrics(checked_step, checked)
        self.rows.append((checked_step, checked))

    def log_long_text(self, key: str, text: str) -> None:
        """Records ``text`` under ``key``."""
        self._check("log_long_text")
        check_text(key, text)
        self.texts[key] = text

    def sync(self) -> None:
        """Counts the call."""
        if self.fail_with is not None:
            raise self.fail_with
        self.syncs += 1

    def get_url(self) -> str | None:
        """The ``url`` given."""
        return self.url

    def close(self, exit_code: int = 0) -> None:
        """Counts the call and keeps ``exit_code``."""
        if self.on_close is not None:
            self.on_close(self)
        self.closed += 1
        self.exit_codes.append(exit_code)
