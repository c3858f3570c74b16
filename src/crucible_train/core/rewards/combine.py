"""The weighted combination of reward components, and its failure policy.

Core layer. :class:`CombinedReward` scores a batch of :class:`RewardInput`: every
component scores every row; the row's reward is ``sum(weight * value)``. A component that
raises, or returns NaN, inf or a non-number, has *failed* on that row: the failure is
counted for that component, the row's reward is ``None`` and evaluation goes on. When a
component's failures exceed ``max_failure_rate`` of the batch's rows it raises
:class:`~crucible_train.errors.RewardError` naming the component and its first failure. A
component returning ``None`` (cannot score this row, see the contract) makes the row's
reward ``None`` without counting a failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs

from crucible_train.core.rewards.contract import Reward, RewardInput
from crucible_train.errors import ConfigurationError, RewardError

__all__ = ["CombinedReward", "RewardBatch", "WeightedReward"]


@attrs.frozen(kw_only=True)
class WeightedReward:
    """One component of a combination: a reward and its weight."""

    reward: Reward
    weight: float = 1.0

    @property
    def name(self) -> str:
        """The component's name (its metric label)."""
        return self.reward.name


@attrs.frozen(kw_only=True)
class RewardBatch:
    """The rewards of one batch.

    Attributes:
        totals: per row, the weighted sum, or None when a component failed or gave None.
        values: per component name, per row, the component's UNWEIGHTED value (None where
            it failed or gave None).
        failures: per component name, how many rows it failed on.
        first_errors: per component name that failed, its first failure's description.
    """

    totals: tuple[float | None, ...]
    values: Mapping[str, tuple[float | None, ...]]
    failures: Mapping[str, int]
    first_errors: Mapping[str, str]


def _check_value(value: object) -> float | str | None:
    """The value as a float, None, or a string describing why it is a failure."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"returned {type(value).__name__} {value!r:.80}, expected a float or None"
    result = float(value)
    if not math.isfinite(result):
        return f"returned {result!r}, expected a finite float"
    return result


@attrs.frozen(kw_only=True)
class CombinedReward:
    """``sum(weight * value)`` over ``components``; see the module docstring.

    Args:
        components: the weighted rewards; labels must be distinct.
        max_failure_rate: the share of a batch's rows (``0 .. 1``) a component may fail
            on before :meth:`score_batch` raises; ``0`` stops at the first failure.
    """

    components: tuple[WeightedReward, ...]
    max_failure_rate: float = 0.1

    def __attrs_post_init__(self) -> None:
        if not self.components:
            raise ConfigurationError("a combined reward needs at least one component")
        names = [c.name for c in self.components]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ConfigurationError(
                f"reward components share the label(s) {', '.join(doubles)}; give each a "
                "distinct label option so their metrics do not collide"
            )
        if not 0.0 <= self.max_failure_rate <= 1.0 or math.isnan(self.max_failure_rate):
            raise ConfigurationError(
                f"max_failure_rate must be in [0, 1], got {self.max_failure_rate!r}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """The components' names, in order."""
        return tuple(c.name for c in self.components)

    def score_batch(self, samples: Sequence[RewardInput]) -> RewardBatch:
        """Score every row with every component.

        Raises:
            RewardError: a component failed on more than ``max_failure_rate`` of the rows.
        """
        values: dict[str, list[float | None]] = {}
        failures: dict[str, int] = {}
        first_errors: dict[str, str] = {}
        for component in self.components:
            column: list[float | None] = []
            for index, sample in enumerate(samples):
                try:
                    checked = _check_value(component.reward(sample))
                except Exception as exc:  # a reward's failure is data: count it, go on
                    checked = f"raised {type(exc).__name__}: {exc}"
                if isinstance(checked, str):
                    failures[component.name] = failures.get(component.name, 0) + 1
                    first_errors.setdefault(component.name, f"row {index}: {checked}")
                    checked = None
                column.append(checked)
            values[component.name] = column
            self._check_rate(
                component.name, failures.get(component.name, 0), len(samples), first_errors
            )
        totals: list[float | None] = []
        for index in range(len(samples)):
            parts = [(c.weight, values[c.name][index]) for c in self.components]
            if any(value is None for _, value in parts):
                totals.append(None)
            else:
                totals.append(sum(w * v for w, v in parts if v is not None))
        return RewardBatch(
            totals=tuple(totals),
            values={name: tuple(column) for name, column in values.items()},
            failures={name: failures.get(name, 0) for name in self.names},
            first_errors=first_errors,
        )

    def _check_rate(self, name: str, failed: int, rows: int, first: Mapping[str, str]) -> None:
        if failed and failed > self.max_failure_rate * rows:
            raise RewardError(
                f"reward component {name!r} failed on {failed} of {rows} rows, more than "
                f"max_failure_rate {self.max_failure_rate:g}; first failure: {first[name]}"
            )
