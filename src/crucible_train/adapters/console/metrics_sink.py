"""Metrics sink printing a table per step to the terminal (adapter layer, ``rich``).

What it prints, on stderr so that stdout stays free for a command's real output:

* per logged step a table titled ``Step N`` (``Metrics`` when the step is ``None``) with
  columns ``Metric | Value``. Rows follow the order in which keys were *first seen in the
  run*, not an alphabetical re-sort per step, so a metric stays on the same line from one
  table to the next and new metrics appear at the bottom;
* values compactly: ints as written (``12345``), floats with 4 significant digits
  (``:.4g``, which switches to scientific notation for very small or large values:
  ``1e-05``, ``1.235e+05``), ``nan``/``inf``/``-inf`` for non-finite floats,
  ``true``/``false`` for booleans, strings verbatim (never read as rich markup);
* ``log_hparams`` as ``key = value`` lines (nested keys joined with ``.``), long values
  shortened in the middle; ``log_long_text`` as the key and the text, cut after
  :data:`MAX_TEXT` characters.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from crucible_train.adapters._metrics_input import (
    check_hparams,
    check_metrics,
    check_open,
    check_step,
    check_text,
)
from crucible_train.errors import ConfigurationError, MetricsSinkError
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = ["ConsoleMetricsSink", "format_value"]

MAX_VALUE = 80
"""Longest hyper-parameter value printed; longer ones keep their start and end."""

MAX_TEXT = 2000
"""Longest long text printed; the rest is summarised as a count of characters."""


def format_value(value: object) -> str:
    """How a metric value is shown (see the module docstring).

    Raises:
        MetricsSinkError: the value is not a number, boolean or string.
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return f"{number:.4g}"
    raise MetricsSinkError(
        f"metric value {value!r} is a {type(value).__name__}; use a number, a boolean or a string"
    )


def _shorten(text: str, limit: int = MAX_VALUE) -> str:
    if len(text) <= limit:
        return text
    keep = limit - 5
    return f"{text[: keep - keep // 3]} ... {text[-(keep // 3) :]}"


def _flatten(config: Mapping[Any, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, f"{name}."))
        else:
            items.append((name, value))
    return items


def _hparam_text(value: Any) -> str:
    if value is None:
        return "null"
    try:
        return format_value(value)
    except MetricsSinkError:
        return repr(value)


class ConsoleMetricsSink(MetricsSink):
    """Prints metrics tables, hyper-parameters and long texts with rich.

    Args:
        every: print the table of every ``every``-th ``log_metrics`` call (the 1st, the
            ``every+1``-th, ...); the others are validated and only remembered for row
            order. 1 prints every call.
        width: console width in characters; ``None`` detects the terminal's.
        console: the rich console to print to (tests pass one writing to a
            ``StringIO``); default: a new console on stderr. Not a ``containers.yaml``
            setting.

    Raises:
        ConfigurationError: ``every`` or ``width`` is not a whole number >= 1.
    """

    def __init__(
        self, *, every: int = 1, width: int | None = None, console: Console | None = None
    ) -> None:
        problems = []
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            problems.append(f"every is {every!r}; use a whole number >= 1")
        if width is not None and (
            isinstance(width, bool) or not isinstance(width, int) or width < 1
        ):
            problems.append(f"width is {width!r}; use a whole number >= 1 or None")
        if problems:
            raise ConfigurationError(*(f"ConsoleMetricsSink: {p}" for p in problems))
        self._every = every
        self._console = console if console is not None else Console(stderr=True, width=width)
        self._order: dict[str, int] = {}  # metric name -> first-seen position in the run
        self._calls = 0
        self._closed = False

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Print ``key = value`` lines under a ``Hyperparameters`` heading."""
        check_open(self._closed, "log_hparams")
        lines = Text("Hyperparameters", style="bold")
        for name, value in _flatten(check_hparams(config)):
            lines.append("\n  ")
            lines.append(name, style="cyan")
            lines.append(" = ")
            lines.append(_shorten(_hparam_text(value)))
        self._console.print(lines)

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Validate ``metrics`` and print them as a table on every ``every``-th call.

        Raises:
            MetricsSinkError: invalid step, a metric name that is not a string, a value
                that is not a number, boolean or string, or a closed sink.
        """
        check_open(self._closed, "log_metrics")
        checked = check_step(step)
        valid = check_metrics(metrics, "use a number, a boolean or a string")
        rows = [(key, format_value(value)) for key, value in valid.items()]
        for key, _text in rows:
            self._order.setdefault(key, len(self._order))
        call = self._calls
        self._calls += 1
        if call % self._every:
            return
        rows.sort(key=lambda row: self._order[row[0]])
        table = Table(title="Metrics" if checked is None else f"Step {checked}")
        table.add_column("Metric", overflow="fold")
        table.add_column("Value", justify="right", overflow="fold")
        for key, text in rows:
            table.add_row(Text(key), Text(text))  # Text: metric names are not markup
        self._console.print(table)

    def log_long_text(self, key: str, text: str) -> None:
        """Print ``key`` and ``text`` (cut after :data:`MAX_TEXT` characters)."""
        check_open(self._closed, "log_long_text")
        check_text(key, text)
        shown = Text(key, style="bold")
        shown.append("\n")
        shown.append(text[:MAX_TEXT])
        if len(text) > MAX_TEXT:
            shown.append(f"\n... ({len(text) - MAX_TEXT} more characters)", style="dim")
        self._console.print(shown)

    def sync(self) -> None:
        """Nothing is buffered: rich writes each table as it is printed."""

    def get_url(self) -> str | None:
        """``None``: a terminal has no URL."""
        return None

    def close(self, exit_code: int = 0) -> None:
        """Mark the sink closed; later ``log_*`` calls raise. Prints nothing. Idempotent."""
        self._closed = True
