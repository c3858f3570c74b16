"""Built-in rewards: a scorer against a column, the format reward, a length penalty, and a
user Python callable.

Core layer: standard library, attrs, :mod:`crucible_train.core.scoring`, ports, errors.
Scorer rewards never re-implement a scorer: they call the registry of
:mod:`crucible_train.core.scoring` (:func:`~crucible_train.core.scoring.score`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from crucible_train.core import scoring
from crucible_train.core.rewards.contract import RewardInput
from crucible_train.errors import ConfigurationError, InvalidDataError

__all__ = [
    "FormatReward",
    "LengthPenalty",
    "PythonReward",
    "ScorerReward",
    "column_text",
    "load_callable",
]


def column_text(sample: RewardInput, column: str) -> str:
    """The row's ``column`` as text (numbers are written as ``str`` does).

    Raises:
        InvalidDataError: the row has no such column, or it is not text or a number.
    """
    if column not in sample.extras:
        known = ", ".join(sorted(sample.extras)) or "none"
        raise InvalidDataError(
            f"the row has no column {column!r} (its extra columns: {known}); add it to the "
            "dataset or set the reward's column option"
        )
    value = sample.extras[column]
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidDataError(
        f"column {column!r} holds {type(value).__name__}; a scorer reward needs text or a number"
    )


@attrs.frozen(kw_only=True)
class ScorerReward:
    """A registered scorer of the completion text against the row's ``column``.

    Args:
        name: the component's name.
        scorer: a name registered in :mod:`crucible_train.core.scoring`.
        column: the extra column holding the target (ignored by target-free scorers
            such as ``regex``).
        strip: strip the completion's surrounding whitespace before scoring.
        require_format_ok: score ``0.0`` when the completion's format is not ok
            (:attr:`RewardInput.format_ok`), so a truncated right answer earns nothing.
        options: the scorer's own options (``pattern``, ``rel_tol``, ``embedding`` ...).
    """

    name: str
    scorer: str
    column: str = "answer"
    strip: bool = False
    require_format_ok: bool = False
    options: Mapping[str, Any] = attrs.field(factory=dict)

    def __call__(self, sample: RewardInput) -> float:
        """The scorer's value in ``[0, 1]``."""
        if self.require_format_ok and not sample.format_ok:
            return 0.0
        found = scoring.get_scorer(self.scorer)
        target = column_text(sample, self.column) if found.needs_target else ""
        text = sample.completion_text.strip() if self.strip else sample.completion_text
        return scoring.score(found, text, target, **self.options)


@attrs.frozen(kw_only=True)
class FormatReward:
    """``1.0`` when the completion's format is ok, else ``0.0``.

    With ``offset = -1`` and weight ``c`` it is the penalty ``c * (format_ok - 1)``: 0
    for a clean turn, ``-c`` otherwise.

    Args:
        name: the component's name.
        require_stop: also require that sampling was not cut by the token limit
            (:attr:`RewardInput.format_ok`); false uses the renderer's ``parse_ok`` alone.
        offset: added to the value (``-1`` turns it into a penalty: 0 or -1).
    """

    name: str = "format"
    require_stop: bool = True
    offset: float = 0.0

    def __call__(self, sample: RewardInput) -> float:
        """``float(ok) + offset``."""
        ok = sample.format_ok if self.require_stop else sample.parse_ok
        return float(ok) + self.offset


@attrs.frozen(kw_only=True)
class LengthPenalty:
    """``-per_token * max(0, len(completion_tokens) - free_tokens)``; never positive.

    Counts the sampled token ids, not characters of the text.

    Args:
        name: the component's name.
        free_tokens: tokens that cost nothing.
        per_token: penalty per token beyond ``free_tokens``.
    """

    name: str = "length"
    free_tokens: int = 0
    per_token: float = 0.001

    def __attrs_post_init__(self) -> None:
        if isinstance(self.free_tokens, bool) or not isinstance(self.free_tokens, int):
            raise ConfigurationError(
                f"reward {self.name!r} option free_tokens must be an integer >= 0, "
                f"got {self.free_tokens!r}"
            )
        if self.free_tokens < 0:
            raise ConfigurationError(
                f"reward {self.name!r} option free_tokens must be >= 0, got {self.free_tokens}"
            )
        if not math.isfinite(self.per_token) or self.per_token < 0:
            raise ConfigurationError(
                f"reward {self.name!r} option per_token must be a finite number >= 0, "
                f"got {self.per_token!r}"
            )

    def __call__(self, sample: RewardInput) -> float:
        """The (non-positive) penalty."""
        excess = max(0, len(sample.completion_tokens) - self.free_tokens)
        return -self.per_token * excess


def load_callable(path: str) -> Callable[..., Any]:
    """Import ``package.module:function`` and return the function.

    Raises:
        ConfigurationError: the path is malformed, the module does not import (the
            import error is in the message), the attribute is missing or not callable.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"python reward {path!r} must be written package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error of user code is a configuration error
        raise ConfigurationError(
            f"python reward {path!r}: module {module_name!r} does not import: "
            f"{type(exc).__name__}: {exc}; check the name and that it is on PYTHONPATH"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigurationError(
                f"python reward {path!r}: module {module_name!r} has no attribute {attr!r}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigurationError(
            f"python reward {path!r} is a {type(target).__name__}, not a callable; "
            "point it at a function taking a RewardInput"
        )
    return target  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True)
class PythonReward:
    """A user function ``fn(sample: RewardInput) -> float | None``, imported once.

    Args:
        name: the component's name.
        function: ``package.module:function``; imported when the reward is built.
    """

    name: str
    function: str
    _fn: Callable[..., Any] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_fn", load_callable(self.function))

    def __call__(self, sample: RewardInput) -> Any:
        """Whatever the function returns; the combination checks it is a finite number."""
        return self._fn(sample)
