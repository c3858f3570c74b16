"""The recipes of ``crucible-train train`` and their ``train.<recipe>`` blocks (container layer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from crucible_train.core.training.distill import DistillConfig, run_distill_job
from crucible_train.core.training.dpo import DpoConfig, run_dpo_job
from crucible_train.core.training.rl import RlConfig, run_rl_job
from crucible_train.core.training.sft import SftConfig, run_sft_job

__all__ = ["TRAIN_KEY", "TRAIN_RECIPES", "Recipe"]

TRAIN_KEY = "train"  # the one top-level block that is not a port: `crucible-train train`


@attrs.frozen
class Recipe:
    """One training recipe of ``crucible-train train``.

    Attributes:
        config_class: its attrs config class (``train.<recipe>`` keys are its fields).
        job: its ``run_<recipe>_job(context, config)`` function.
    """

    config_class: type
    job: Callable[..., Any]

    def load_config_class(self) -> type:
        """The config class."""
        return self.config_class

    def load_job(self) -> Callable[..., Any]:
        """The job function."""
        return self.job


TRAIN_RECIPES: dict[str, Recipe] = {
    "sft": Recipe(config_class=SftConfig, job=run_sft_job),
    "rl": Recipe(config_class=RlConfig, job=run_rl_job),
    "dpo": Recipe(config_class=DpoConfig, job=run_dpo_job),
    "distill": Recipe(config_class=DistillConfig, job=run_distill_job),
}
"""Recipe name → :class:`Recipe`, in the order the ``train`` block lists them."""
