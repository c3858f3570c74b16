"""Field checks shared by the loop configs and the recipe configs that extend them.

Two styles, each keeping the messages of the configs that use it:

* attrs validators (``check_*``) raise :class:`~crucible_train.errors.ConfigurationError`
  at the first bad field (RL and distillation);
* problem functions (``*_problem``) return a message or ``None``, so that a config can
  report every bad field at once (SFT and DPO).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from crucible_train.errors import ConfigurationError

__all__ = [
    "Validator",
    "check_non_negative",
    "check_optional_whole",
    "check_positive",
    "check_whole",
    "column_problem",
    "finite_positive_problem",
    "non_negative_problem",
    "number_problem",
    "positive_problem",
    "whole_problem",
]

Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]
"""An attrs field validator."""


def check_positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """attrs validator: a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{attribute.name} is {value!r}; use a number > 0")


def check_non_negative(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """attrs validator: a number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"{attribute.name} is {value!r}; use a number >= 0")


def check_whole(minimum: int) -> Validator:
    """attrs validator: a whole number >= ``minimum``."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(
                f"{attribute.name} is {value!r}; use a whole number >= {minimum}"
            )

    return check


def check_optional_whole(minimum: int) -> Validator:
    """attrs validator: ``None`` or a whole number >= ``minimum``."""
    check = check_whole(minimum)

    def optional(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional


def whole_problem(name: str, value: object, minimum: int) -> str | None:
    """``name must be a whole number >= minimum, got ...`` unless it is one."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return f"{name} must be a whole number >= {minimum}, got {value!r}"
    return None


def number_problem(name: str, value: object, ok: bool, expected: str) -> str | None:
    """``name must be <expected>, got ...`` unless ``value`` is a number and ``ok``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not ok:
        return f"{name} must be {expected}, got {value!r}"
    return None


def finite_positive_problem(name: str, value: object) -> str | None:
    """:func:`number_problem` for a finite number > 0."""
    ok = isinstance(value, int | float) and math.isfinite(value) and value > 0
    return number_problem(name, value, ok, "a finite number > 0")


def positive_problem(
    name: str, value: float | int | None, *, allow_none: bool = False
) -> str | None:
    """``name must be > 0, got ...`` unless ``value`` is a finite number > 0 (or an
    allowed ``None``)."""
    if value is None and allow_none:
        return None
    if value is None or not math.isfinite(value) or value <= 0:
        return f"{name} must be > 0, got {value!r}"
    return None


def non_negative_problem(name: str, value: int | None, *, allow_none: bool = False) -> str | None:
    """``name must be >= 0, got ...`` unless ``value`` is >= 0 (or an allowed ``None``)."""
    if value is None and allow_none:
        return None
    if value is None or value < 0:
        return f"{name} must be >= 0, got {value!r}"
    return None


def column_problem(name: str, value: object) -> str | None:
    """``name must be a column name ...`` unless ``value`` is a non-blank string."""
    if not isinstance(value, str) or not value.strip():
        return f"{name} must be a column name (a non-empty string), got {value!r}"
    return None
