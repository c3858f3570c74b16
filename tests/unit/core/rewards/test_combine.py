"""Weighted combination and the failure policy."""

from __future__ import annotations

import attrs
import pytest

from crucible_train.core.rewards import (
    CombinedReward,
    FormatReward,
    RewardInput,
    WeightedReward,
)
from crucible_train.errors import ConfigurationError, RewardError


@attrs.frozen
class _Scripted:
    name: str
    values: dict[str, object]

    def __call__(self, sample: RewardInput) -> object:
        value = self.values[sample.completion_text]
        if isinstance(value, Exception):
            raise value
        return value


def _samples(*texts: str) -> list[RewardInput]:
    return [RewardInput(prompt=[], completion_text=t) for t in texts]


def _combo(values: dict[str, object], rate: float = 1.0) -> CombinedReward:
    return CombinedReward(
        components=(
            WeightedReward(reward=_Scripted("s", values), weight=2.0),  # type: ignore[arg-type]
            WeightedReward(reward=FormatReward(), weight=0.5),
        ),
        max_failure_rate=rate,
    )


def test_total_is_the_weighted_sum_and_values_are_unweighted() -> None:
    batch = _combo({"a": 1.0, "b": 0.25}).score_batch(_samples("a", "b"))
    assert batch.totals == (2.5, 1.0)
    assert batch.values == {"s": (1.0, 0.25), "format": (1.0, 1.0)}
    assert batch.failures == {"s": 0, "format": 0}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (float("nan"), "returned nan"),
        ("0.5", "returned str"),
        (True, "returned bool"),
        (ValueError("kaput"), "raised ValueError: kaput"),
    ],
)
def test_a_failure_is_counted_and_the_row_gets_none(bad: object, message: str) -> None:
    batch = _combo({"ok": 1.0, "bad": bad}).score_batch(_samples("ok", "bad", "ok"))
    assert batch.totals == (2.5, None, 2.5)
    assert batch.values["s"] == (1.0, None, 1.0)
    assert batch.failures["s"] == 1
    assert message in batch.first_errors["s"]
    assert batch.first_errors["s"].startswith("row 1:")


def test_none_means_unscored_not_failed() -> None:
    batch = _combo({"a": None}).score_batch(_samples("a"))
    assert batch.totals == (None,)
    assert batch.failures["s"] == 0


def test_above_the_failure_rate_it_stops_with_the_first_error() -> None:
    values: dict[str, object] = {"ok": 1.0, "x": RuntimeError("first"), "y": RuntimeError("second")}
    combo = _combo(values, rate=0.5)
    combo.score_batch(_samples("ok", "x"))  # 1 of 2 is not above 0.5
    with pytest.raises(
        RewardError, match=r"'s' failed on 2 of 3 rows.*row 1: raised RuntimeError: first"
    ):
        combo.score_batch(_samples("ok", "x", "y"))


def test_zero_rate_stops_at_the_first_failure() -> None:
    with pytest.raises(RewardError, match="failed on 1 of 2"):
        _combo({"ok": 1.0, "x": ValueError("v")}, rate=0.0).score_batch(_samples("ok", "x"))


def test_labels_must_be_distinct_and_rate_in_range() -> None:
    fmt = WeightedReward(reward=FormatReward())
    with pytest.raises(ConfigurationError, match="share the label"):
        CombinedReward(components=(fmt, fmt))
    with pytest.raises(ConfigurationError, match="at least one"):
        CombinedReward(components=())
    with pytest.raises(ConfigurationError, match="max_failure_rate"):
        CombinedReward(components=(fmt,), max_failure_rate=1.5)
