"""Core: fan one stream of metrics out to several :class:`~crucible_train.ports.MetricsSink`.

A run usually logs to a file, the console and a tracking service at once. A failing sink
(a tracking service down, a full disk) must not stop the others or the training loop, and
must not go unnoticed: its first failure is reported once through :mod:`logging`, later
ones are counted, and :attr:`MultiplexMetricsSink.failures` plus a summary at
:meth:`~MultiplexMetricsSink.close` say how many calls each sink lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from crucible_train.core.config_dump import dump_config
from crucible_train.errors import MetricsSinkError
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = ["MultiplexMetricsSink"]

_log = logging.getLogger(__name__)


class MultiplexMetricsSink(MetricsSink):
    """Forwards every call to each sink in order, isolating their failures.

    ``log_hparams`` turns the configuration JSON-safe with
    :func:`~crucible_train.core.config_dump.dump_config` once, redacting secrets by key
    name and by value, so no sink ever receives a raw config or a secret.

    Args:
        sinks: the sinks to feed; their order is the order calls reach them.
        secrets: secret strings (API keys, tokens) to mask wherever they appear in a
            logged configuration.
    """

    def __init__(self, *, sinks: Sequence[MetricsSink], secrets: Iterable[str] = ()) -> None:
        self._sinks = tuple(sinks)
        self._secrets = tuple(secret for secret in secrets if secret)
        self._failures: dict[int, int] = {}
        self._closed = False

    @property
    def sinks(self) -> tuple[MetricsSink, ...]:
        """The sinks this multiplexer feeds."""
        return self._sinks

    @property
    def failures(self) -> dict[str, int]:
        """Failed calls per sink, keyed by ``"<index>:<class name>"``; empty when all is well."""
        return {
            f"{index}:{type(self._sinks[index]).__name__}": count
            for index, count in sorted(self._failures.items())
        }

    def _each(self, action: str, call: Callable[[MetricsSink], Any]) -> list[Any]:
        if self._closed and action != "close":
            raise MetricsSinkError(f"{action} called after close(); create a new sink per run")
        results: list[Any] = []
        for index, sink in enumerate(self._sinks):
            try:
                results.append(call(sink))
            except Exception as exc:  # a sink's failure must never reach the training loop
                count = self._failures.get(index, 0) + 1
                self._failures[index] = count
                results.append(None)
                if count == 1:
                    _log.error(
                        "metrics sink %s failed in %s: %s (further failures of this sink are "
                        "counted and summarised at close)",
                        type(sink).__name__,
                        action,
                        exc,
                    )
        return results

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Send the run configuration, dumped JSON-safe and redacted, to every sink."""
        safe = dump_config(config, secrets=self._secrets)
        self._each("log_hparams", lambda sink: sink.log_hparams(safe))

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Send one row of metrics to every sink."""
        self._each("log_metrics", lambda sink: sink.log_metrics(metrics, step))

    def log_long_text(self, key: str, text: str) -> None:
        """Send a long text to every sink."""
        self._each("log_long_text", lambda sink: sink.log_long_text(key, text))

    def sync(self) -> None:
        """Ask every sink to push what it holds."""
        self._each("sync", lambda sink: sink.sync())

    def get_url(self) -> str | None:
        """The first URL any sink offers."""
        for url in self._each("get_url", lambda sink: sink.get_url()):
            if url:
                return str(url)
        return None

    def close(self, exit_code: int = 0) -> None:
        """Close every sink with ``exit_code`` (idempotent); log a summary of lost calls."""
        if self._closed:
            return
        self._each("close", lambda sink: sink.close(exit_code))
        self._closed = True
        if self._failures:
            _log.error("metrics sinks lost calls during this run: %s", self.failures)
