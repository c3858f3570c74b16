"""Turn a batch's rewards into the metrics the training loop logs.

Core layer. :func:`reward_metrics` gives, for a :class:`RewardBatch`:

* ``reward/<name>/mean``: the mean UNWEIGHTED value of each component over the rows it
  scored (NaN when it scored none);
* ``reward/<name>/failures``: how many rows the component failed on;
* ``reward/total/mean``: the mean weighted total over the rows that have one;
* ``reward/total/none``: the rows whose total is None (a failure or a None component).
"""

from __future__ import annotations

from crucible_train.core.rewards.combine import RewardBatch

__all__ = ["reward_metrics"]


def _mean(values: tuple[float | None, ...]) -> float:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else float("nan")


def reward_metrics(batch: RewardBatch, prefix: str = "reward") -> dict[str, float]:
    """The per-component means, failure counts and the total's mean (see the module)."""
    metrics: dict[str, float] = {}
    for name, values in batch.values.items():
        metrics[f"{prefix}/{name}/mean"] = _mean(values)
        metrics[f"{prefix}/{name}/failures"] = float(batch.failures.get(name, 0))
    metrics[f"{prefix}/total/mean"] = _mean(batch.totals)
    metrics[f"{prefix}/total/none"] = float(sum(t is None for t in batch.totals))
    return metrics
