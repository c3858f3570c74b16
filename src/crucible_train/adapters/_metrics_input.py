"""Input checks shared by every metrics sink adapter (adapter layer, pure Python and numpy).

One function per rule, so the noop, console, files, W&B and Neptune sinks accept and refuse
exactly the same calls, with the same messages (see :mod:`crucible_train.ports.metrics`).
Every check raises :class:`~crucible_train.errors.MetricsSinkError`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Final, cast

import numpy as np

from crucible_train.errors import MetricsSinkError
from crucible_train.ports.metrics import MetricValue

__all__ = ["check_hparams", "check_metrics", "check_open", "check_step", "check_text"]

_FAST_TYPES: Final = frozenset({float, int, str, bool})  # skip isinstance for the usual values


def check_open(closed: bool, operation: str, sink: str = "metrics sink") -> None:
    """Refuse a call made after ``close``.

    Args:
        closed: whether the sink has been closed.
        operation: the method called, e.g. ``"log_metrics"``.
        sink: how the message names the sink (``"Neptune sink"``).

    Raises:
        MetricsSinkError: ``closed`` is true.
    """
    if closed:
        raise MetricsSinkError(f"{operation} called after close(); the {sink} is closed")


def check_hparams(config: object) -> Mapping[str, Any]:
    """Check that ``config`` is a mapping with string keys.

    Returns:
        ``config`` itself.

    Raises:
        MetricsSinkError: not a mapping, or a key is not a string (the first one is named).
    """
    if not isinstance(config, Mapping):
        raise MetricsSinkError(f"hyper-parameters must be a mapping, got {type(config).__name__}")
    for key in config:
        if not isinstance(key, str):
            raise MetricsSinkError(f"hyper-parameter names must be strings, got {key!r}")
    return config


def check_step(step: object) -> int | None:
    """Check a metrics step: ``None`` or a whole number >= 0 (numpy integers too, not bools).

    Returns:
        The step as an ``int``, or ``None``.

    Raises:
        MetricsSinkError: the step is negative or not a whole number.
    """
    if step is None:
        return None
    # A plain int (the usual step) skips the slower ABC check.
    if type(step) is not int and (isinstance(step, bool) or not isinstance(step, numbers.Integral)):
        raise MetricsSinkError(
            f"metrics step is {step!r} ({type(step).__name__}); use a whole number >= 0 or None"
        )
    if step < 0:
        raise MetricsSinkError(f"metrics step is {step}; use a whole number >= 0 or None")
    return int(step)


def check_metrics(
    metrics: object, advice: str = "use a number or a short string"
) -> Mapping[str, MetricValue]:
    """Check that ``metrics`` maps string names to numbers, booleans or strings.

    Numbers include NaN, infinities and numpy scalars (``np.float32``, ``np.int64``,
    ``np.bool_``).

    Args:
        metrics: what the caller passed to ``log_metrics``.
        advice: the end of the message for a bad value, after the metric's name and type.

    Returns:
        ``metrics`` itself.

    Raises:
        MetricsSinkError: not a mapping, a name that is not a string, or a value of
            another type (the message names the metric).
    """
    if not isinstance(metrics, Mapping):
        raise MetricsSinkError(
            f"metrics must be a mapping of name to value, got {type(metrics).__name__}"
        )
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise MetricsSinkError(f"metric name {key!r} is a {type(key).__name__}; use a string")
        # numbers.Real covers int, float, bool and numpy numbers; numpy bools are apart.
        if type(value) not in _FAST_TYPES and not isinstance(value, numbers.Real | str | np.bool_):
            raise MetricsSinkError(f"metric {key!r} is a {type(value).__name__}; {advice}")
    return cast(Mapping[str, MetricValue], metrics)


def check_text(key: object, text: object) -> None:
    """Check the arguments of ``log_long_text``: a string key and a string text.

    Raises:
        MetricsSinkError: either is not a string.
    """
    if not isinstance(key, str) or not isinstance(text, str):
        raise MetricsSinkError(
            f"log_long_text needs a string key and text, got {type(key).__name__} "
            f"and {type(text).__name__}"
        )
