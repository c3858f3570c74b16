"""Recipes: what ``crucible-train train NAME`` runs.

A recipe is a config class (the schema of the ``train.<name>`` YAML block; it extends a
core loop's config with its task's fields) and a ``run_<name>_job(context, config)``
function that builds the task's data, environments and evaluators from the
:class:`~crucible_train.core.training.job.JobContext` and calls a core loop. Core loops
know no task; the built-in one is :mod:`crucible_train.recipes.arithmetic`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.recipes.distill import DistillConfig, run_distill_job
from crucible_train.recipes.dpo import DpoConfig, run_dpo_job
from crucible_train.recipes.rl import RlConfig, run_rl_job
from crucible_train.recipes.sft import SftConfig, run_sft_job

__all__ = ["RECIPES", "Recipe"]


@attrs.frozen
class Recipe:
    """One training recipe of ``crucible-train train``.

    Attributes:
        config_class: its attrs config class (``train.<recipe>`` keys are its fields).
        job: its ``run_<recipe>_job(context, config)`` function.
    """

    config_class: type
    job: Callable[[JobContext, Any], LoopResult]

    def load_config_class(self) -> type:
        """The config class."""
        return self.config_class

    def load_job(self) -> Callable[[JobContext, Any], LoopResult]:
        """The job function."""
        return self.job


RECIPES: dict[str, Recipe] = {
    "sft": Recipe(config_class=SftConfig, job=run_sft_job),
    "rl": Recipe(config_class=RlConfig, job=run_rl_job),
    "dpo": Recipe(config_class=DpoConfig, job=run_dpo_job),
    "distill": Recipe(config_class=DistillConfig, job=run_distill_job),
}
"""Recipe name → :class:`Recipe`, in the order the ``train`` block lists them."""
