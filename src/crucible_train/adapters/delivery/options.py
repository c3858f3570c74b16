"""Checks of the delivery options (adapter layer): rates, bursts, back-off, heartbeats.

:func:`check_sender_options` is what
:class:`~crucible_train.adapters.delivery.sender.ReliableSender` runs on its arguments;
sinks use :func:`is_positive_number` and :func:`count_problem` for their own settings so
the rule and its wording are written once.
"""

from __future__ import annotations

import math

from crucible_train.errors import ConfigurationError

__all__ = ["check_sender_options", "count_problem", "is_positive_number", "positive_problem"]


def is_positive_number(value: object) -> bool:
    """Whether ``value`` is a finite ``int`` or ``float`` above 0 (``bool`` is not)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def positive_problem(name: str, value: object) -> str | None:
    """The problem with option ``name`` when ``value`` is not a finite number > 0."""
    if is_positive_number(value):
        return None
    return f"{name} is {value!r}; use a finite number > 0"


def count_problem(name: str, value: object) -> str | None:
    """The problem with option ``name`` when ``value`` is not a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"{name} is {value!r}; use a whole number >= 1"
    return None


def check_sender_options(
    *,
    rate_per_s: float,
    burst: int,
    heartbeat_s: float | None,
    max_rows_per_request: int,
    min_backoff_s: float,
    max_backoff_s: float,
) -> None:
    """Check a sender's options, reporting every problem at once.

    Raises:
        ConfigurationError: one problem per bad option.
    """
    problems = [
        problem
        for problem in (
            positive_problem("rate_per_s", rate_per_s),
            positive_problem("min_backoff_s", min_backoff_s),
            positive_problem("max_backoff_s", max_backoff_s),
        )
        if problem is not None
    ]
    if heartbeat_s is not None and not is_positive_number(heartbeat_s):
        problems.append(f"heartbeat_s is {heartbeat_s!r}; use a number > 0 or None")
    for name, count in (("burst", burst), ("max_rows_per_request", max_rows_per_request)):
        if (problem := count_problem(name, count)) is not None:
            problems.append(problem)
    if not problems and max_backoff_s < min_backoff_s:
        problems.append(f"max_backoff_s ({max_backoff_s}) is below min_backoff_s ({min_backoff_s})")
    if problems:
        raise ConfigurationError(*problems)
