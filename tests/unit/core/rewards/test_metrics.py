"""Per-component metric names of a reward batch."""

from __future__ import annotations

import math

from crucible_train.core.rewards import RewardBatch, reward_metrics


def test_metrics_per_component_with_failures_and_total() -> None:
    batch = RewardBatch(
        totals=(1.5, None, 0.5),
        values={"exact_match": (1.0, None, 0.0), "format": (1.0, 1.0, 1.0)},
        failures={"exact_match": 1, "format": 0},
        first_errors={"exact_match": "row 1: raised X"},
    )
    assert reward_metrics(batch) == {
        "reward/exact_match/mean": 0.5,
        "reward/exact_match/failures": 1.0,
        "reward/format/mean": 1.0,
        "reward/format/failures": 0.0,
        "reward/total/mean": 1.0,
        "reward/total/none": 1.0,
    }


def test_a_component_that_scored_nothing_has_a_nan_mean() -> None:
    batch = RewardBatch(totals=(None,), values={"j": (None,)}, failures={"j": 1}, first_errors={})
    metrics = reward_metrics(batch, prefix="train/reward")
    assert math.isnan(metrics["train/reward/j/mean"])
    assert metrics["train/reward/total/none"] == 1.0
