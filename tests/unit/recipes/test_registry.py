"""The recipe registry, the recipe configs over the loop configs, and core knowing no task."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from crucible_train.container import TRAIN_RECIPES
from crucible_train.core.training.distill import DistillLoopConfig
from crucible_train.core.training.dpo import DpoLoopConfig
from crucible_train.core.training.rl import RlLoopConfig
from crucible_train.core.training.sft import SftLoopConfig
from crucible_train.errors import ConfigurationError
from crucible_train.recipes import RECIPES
from crucible_train.recipes.distill import DEFAULT_STUDENT, DistillConfig, run_distill_job
from crucible_train.recipes.dpo import DpoConfig, run_dpo_job
from crucible_train.recipes.rl import RlConfig, run_rl_job
from crucible_train.recipes.settings import key_order
from crucible_train.recipes.sft import SftConfig, run_sft_job

CORE = Path(__file__).resolve().parents[3] / "src" / "crucible_train" / "core"

LOOPS = [
    (SftConfig, SftLoopConfig),
    (RlConfig, RlLoopConfig),
    (DpoConfig, DpoLoopConfig),
    (DistillConfig, DistillLoopConfig),
]


def test_registry_lists_the_four_recipes_in_the_train_block_order() -> None:
    assert list(RECIPES) == ["sft", "rl", "dpo", "distill"]
    assert [(r.load_config_class(), r.load_job()) for r in RECIPES.values()] == [
        (SftConfig, run_sft_job),
        (RlConfig, run_rl_job),
        (DpoConfig, run_dpo_job),
        (DistillConfig, run_distill_job),
    ]
    assert TRAIN_RECIPES is RECIPES  # the container's name for the same registry


@pytest.mark.parametrize(("recipe", "loop"), LOOPS, ids=lambda c: c.__name__)
def test_a_recipe_config_extends_its_loop_config_with_the_loop_defaults(
    recipe: type, loop: type
) -> None:
    assert issubclass(recipe, loop)
    loop_fields = {field.name for field in attrs.fields(loop)}
    assert loop_fields < {field.name for field in attrs.fields(recipe)}
    built, default = recipe(), loop()
    # A recipe whose loop fields may be null (the task's default) resolves them.
    built = built.loop_config() if hasattr(built, "loop_config") else built
    for name in loop_fields:
        assert getattr(built, name) == getattr(default, name), name


@pytest.mark.parametrize("loop", [loop for _, loop in LOOPS], ids=lambda c: c.__name__)
def test_loop_configs_have_no_task_field(loop: type) -> None:
    names = {field.name for field in attrs.fields(loop)}
    task_fields = {"dataset", "test_dataset", "test_size", "train_size", "max_operand"}
    assert not names & (task_fields | {"format_coef", "groups_per_batch", "student"})


def test_core_names_no_task() -> None:
    words = re.compile(r"arithmetic|max_operand|format_coef|test_size|train_size", re.IGNORECASE)
    hits = [
        f"{path.relative_to(CORE)}:{number}: {line.strip()}"
        for path in sorted(CORE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if words.search(line)
    ]
    assert hits == []


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        (RlConfig, "groups_per_batch", 0),
        (RlConfig, "group_size", 0),
        (RlConfig, "eval_problems", 0),
        (RlConfig, "max_operand", 0),
        (RlConfig, "format_coef", -0.1),
        (RlConfig, "start_from_step", -1),
        (DistillConfig, "group_size", 0),
        (DistillConfig, "eval_every", -1),
        (DistillConfig, "teacher_step", -1),
        (DpoConfig, "test_size", 0),
        (DpoConfig, "train_size", 0),
        (DpoConfig, "max_operand", 0),
        (DpoConfig, "start_from_step", -1),
        (DpoConfig, "dataset", " "),
    ],
)
def test_bad_task_fields_are_refused_naming_the_field(
    config: type, field: str, value: object
) -> None:
    with pytest.raises(ConfigurationError, match=field):
        config(**{field: value})


def test_recipe_validation_reports_loop_and_task_problems_together() -> None:
    with pytest.raises(ConfigurationError) as info:
        DpoConfig(beta=0.0, test_size=0)
    assert str(info.value) == (
        "invalid DPO config: beta must be > 0, got 0.0; test_size must be > 0, got 0"
    )


def test_default_student_is_smaller_and_fresh() -> None:
    config = DistillConfig()
    assert config.student == DEFAULT_STUDENT
    assert config.student["model_path"] is None
    assert config.student["hidden_size"] < 128
    with pytest.raises(ConfigurationError, match="loss_fn"):
        DistillConfig(loss_fn="cross_entropy")


def test_key_order_must_name_every_field_once() -> None:
    @attrs.frozen(kw_only=True)
    class Loop:
        a: int = 1
        b: int = 2

    with pytest.raises(TypeError, match=r"must name each of its fields \['a', 'b', 'c'\] once"):

        @attrs.frozen(kw_only=True, field_transformer=key_order("a", "c"))
        class Missing(Loop):
            c: int = 3

    with pytest.raises(TypeError, match="once"):

        @attrs.frozen(kw_only=True, field_transformer=key_order("a", "b", "b", "c"))
        class Twice(Loop):
            c: int = 3

    @attrs.frozen(kw_only=True, field_transformer=key_order("a", "c", "b"))
    class Ordered(Loop):
        c: int = 3

    assert [field.name for field in attrs.fields(Ordered)] == ["a", "c", "b"]
    built: Any = Ordered(c=5)
    assert (built.a, built.b, built.c) == (1, 2, 5)
