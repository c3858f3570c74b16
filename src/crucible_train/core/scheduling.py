"""Learning-rate multiplier schedules (core layer; pure, no I/O).

Training loops multiply their base learning rate by the value a schedule gives for the
current step. This module defines the schedules, parses them from configuration values
and evaluates them. It imports only the standard library, ``attrs`` and
:mod:`crucible_train.errors`.

Schedules
---------
* ``"constant"``: ``1``.
* ``"linear"``: ``1 - step / total``.
* ``"cosine"``: ``0.5 * (1 + cos(pi * step / total))``.
* :class:`Warmup` ``(steps=W, base=...)``, also written ``("warmup", W, base)``,
  ``["warmup", W, base]`` or ``{"warmup": W, "base": ...}``: ``step / W`` while
  ``step < W``, then ``base`` evaluated at ``step - W`` over ``total - W`` steps. ``base``
  may itself be a warmup, so warmups nest.

Edge behaviour (every multiplier is finite and in ``[0, 1]`` for every step >= 0)
--------------------------------------------------------------------------------
* ``step`` is clamped to ``[0, total_steps]``: past the end a schedule holds the value it
  had at ``total_steps``. Linear and cosine stay at ``0``, constant at ``1``; cosine never
  rises again past the end.
* ``W == 0`` means no warmup: the base schedule is used unchanged.
* At ``step == W`` the warmup hands over to the base schedule at the base's step ``0``:
  ``1`` for ``"constant"``, ``"linear"`` and ``"cosine"``. A nested warmup base starts its
  own ramp there, at ``0`` (unless its own ``W`` is ``0``), so nested warmups run one ramp
  after the other.
* ``total_steps <= W``: the whole run is warmup, the multiplier is ``min(step, total) / W``
  (which is ``min(step / W, 1)`` clamped to the end of the run). ``total == W`` reaches
  exactly ``1`` at the last step and never divides by zero.
* A nested schedule sees the remaining steps of its parent as its own ``total_steps``;
  the rules above apply at each level.

Errors
------
:class:`~crucible_train.errors.ConfigurationError` is raised for an unknown schedule name,
warmup steps that are negative or not a whole number (``bool`` and ``float``, even
``2.0``, are rejected), a malformed warmup tuple/list/mapping, a negative or non-integer
``step``, ``total_steps <= 0``, and a negative or non-finite base learning rate.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Mapping
from typing import Final, Literal, TypeAlias

import attrs

from crucible_train.errors import ConfigurationError

__all__ = [
    "Schedule",
    "ScheduleName",
    "Warmup",
    "compute_schedule_lr_multiplier",
    "lr_at",
    "parse_schedule",
]

ScheduleName: TypeAlias = Literal["constant", "linear", "cosine"]

_NAMES: Final[tuple[ScheduleName, ...]] = ("constant", "linear", "cosine")
_WARMUP_TAG: Final = "warmup"
_VALID_FORMS: Final = (
    "a schedule is one of the names 'constant', 'linear', 'cosine', "
    "or a warmup written ('warmup', W, base), ['warmup', W, base] or "
    "{'warmup': W, 'base': ...} with W a whole number >= 0 and base a schedule"
)

# Long or deeply nested configuration values must not flood the error message.
_REPR: Final = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_short_repr = _REPR.repr


def _whole_number(what: str, value: object, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= ``minimum``.

    Args:
        what: Name of the value, for the error message.
        value: The value to check.
        minimum: Smallest valid value.

    Returns:
        The value as a plain ``int``.

    Raises:
        ConfigurationError: ``value`` is not an integer (``bool`` and ``float`` count as
            not an integer) or is below ``minimum``.
    """
    # bool is an int subclass, and True as a step count is always a config mistake.
    # numbers.Integral admits numpy integers, which callers may pass from arrays.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(
            f"{what} must be a whole number >= {minimum} (an int, not a bool or float); "
            f"got {_short_repr(value)} ({type(value).__name__})"
        )
    number = int(value)
    if number < minimum:
        raise ConfigurationError(f"{what} must be a whole number >= {minimum}; got {number}")
    return number


def _warmup_steps(value: object) -> int:
    """Validate warmup steps for :class:`Warmup` (a whole number >= 0)."""
    return _whole_number("warmup steps", value, 0)


def _base_schedule(value: object) -> ScheduleName | Warmup:
    """Normalise the base of a :class:`Warmup` with :func:`parse_schedule`."""
    return parse_schedule(value)


@attrs.frozen(kw_only=True)
class Warmup:
    """Linear warmup from 0 to 1 over ``steps`` steps, then the ``base`` schedule.

    Attributes:
        steps: Number of warmup steps, a whole number >= 0; 0 means no warmup.
        base: Schedule used after the warmup, normalised to a name or a ``Warmup``; any
            form :func:`parse_schedule` accepts may be passed.
    """

    steps: int = attrs.field(converter=_warmup_steps)
    base: ScheduleName | Warmup = attrs.field(converter=_base_schedule)


Schedule: TypeAlias = ScheduleName | Warmup | tuple[object, ...]
"""A schedule: a name, a :class:`Warmup`, or the ``("warmup", W, base)`` tuple form."""


def parse_schedule(value: object) -> ScheduleName | Warmup:
    """Normalise a schedule given in any accepted form.

    Args:
        value: A name (``"constant"``, ``"linear"``, ``"cosine"``), a :class:`Warmup`, a
            ``("warmup", W, base)`` tuple, a ``["warmup", W, base]`` list (as YAML gives
            it) or a ``{"warmup": W, "base": ...}`` mapping; bases nest.

    Returns:
        The schedule as a name or a :class:`Warmup` whose bases are normalised too.

    Raises:
        ConfigurationError: The name is unknown, a warmup is malformed, or its steps are
            not a whole number >= 0.
    """
    if isinstance(value, Warmup):
        return value
    if isinstance(value, str):
        for name in _NAMES:
            if value == name:
                return name
        raise ConfigurationError(f"unknown schedule name {_short_repr(value)}; {_VALID_FORMS}")
    if isinstance(value, tuple | list):
        if len(value) != 3 or value[0] != _WARMUP_TAG:
            raise ConfigurationError(
                f"malformed warmup schedule {_short_repr(value)}: expected exactly 3 items "
                f"('warmup', W, base); {_VALID_FORMS}"
            )
        return Warmup(steps=value[1], base=value[2])
    if isinstance(value, Mapping):
        if set(value) != {_WARMUP_TAG, "base"}:
            raise ConfigurationError(
                f"malformed warmup schedule {_short_repr(value)}: expected exactly the keys "
                f"'warmup' and 'base'; {_VALID_FORMS}"
            )
        return Warmup(steps=value[_WARMUP_TAG], base=value["base"])
    raise ConfigurationError(
        f"cannot read a schedule from {_short_repr(value)} ({type(value).__name__}); {_VALID_FORMS}"
    )


def _evaluate(schedule: ScheduleName | Warmup, step: int, total: int) -> float:
    """Evaluate a normalised schedule; requires ``0 <= step <= total`` and ``total >= 1``."""
    if isinstance(schedule, Warmup):
        warmup = schedule.steps
        if warmup == 0:
            return _evaluate(schedule.base, step, total)
        # step <= total <= warmup makes the ramp value <= 1, and the base is never
        # reached, so no zero-length base run (the original's division by zero) exists.
        if step < warmup or total <= warmup:
            return step / warmup
        # Both stay in range: 0 <= step - warmup <= total - warmup and total - warmup >= 1.
        return _evaluate(schedule.base, step - warmup, total - warmup)
    if schedule == "constant":
        return 1.0
    fraction = step / total
    if schedule == "linear":
        return 1.0 - fraction
    return 0.5 * (1.0 + math.cos(math.pi * fraction))


def compute_schedule_lr_multiplier(schedule: Schedule, step: int, total_steps: int) -> float:
    """Return the learning-rate multiplier of ``schedule`` at ``step``.

    Args:
        schedule: The schedule, in any form :func:`parse_schedule` accepts.
        step: The current step, a whole number >= 0; steps past ``total_steps`` give the
            value at ``total_steps``.
        total_steps: Length of the run, a whole number >= 1.

    Returns:
        A finite multiplier in ``[0, 1]``.

    Raises:
        ConfigurationError: The schedule is invalid, ``step`` is negative or not an
            integer, or ``total_steps`` is not an integer >= 1.
    """
    normalised = parse_schedule(schedule)
    step_ = _whole_number("step", step, 0)
    total = _whole_number("total_steps", total_steps, 1)
    return _evaluate(normalised, min(step_, total), total)


def _learning_rate(value: object) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number >= 0."""
    # A bool learning rate is a config mistake even though True == 1.
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(
            f"base learning rate must be a finite number >= 0; got {_short_repr(value)}"
        )
    return float(value)


def lr_at(base_lr: float, schedule: Schedule, step: int, total_steps: int) -> float:
    """Return the learning rate at ``step``: ``base_lr`` times the schedule's multiplier.

    Args:
        base_lr: The peak learning rate, a finite number >= 0.
        schedule: The schedule, in any form :func:`parse_schedule` accepts.
        step: The current step, a whole number >= 0.
        total_steps: Length of the run, a whole number >= 1.

    Returns:
        The learning rate for this step, in ``[0, base_lr]``.

    Raises:
        ConfigurationError: ``base_lr`` is negative, not finite or not a number, or any
            argument of :func:`compute_schedule_lr_multiplier` is invalid.
    """
    return _learning_rate(base_lr) * compute_schedule_lr_multiplier(schedule, step, total_steps)
