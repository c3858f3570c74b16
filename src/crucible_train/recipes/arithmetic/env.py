"""The built-in arithmetic task as prompt rows and a reward, for RL and distillation.

Arithmetic is one task among others: its problems become
:class:`~crucible_train.core.datasets.PromptRow` s (the question, and the ``answer``
column), batched by the same :class:`~crucible_train.core.training.prompt_rows.PromptRowDataset`
as a user's dataset, and rewarded by reward specs like a user's
(:func:`arithmetic_reward_specs`): ``correct + format_coef * (format_ok - 1)``, 1 for the
exact answer and a small penalty when the turn did not end cleanly (no stop token, or
unparseable). The held-out ``test/accuracy`` is the greedy
:class:`~crucible_train.recipes.arithmetic.evaluator.ArithmeticAccuracyEvaluator`.
"""

from __future__ import annotations

from typing import Any

from crucible_train.core.evaluation.evaluators import EvaluatorRunner
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.prompt_rows import PromptRowDataset
from crucible_train.ports.metrics import MetricsSink
from crucible_train.recipes.arithmetic.evaluator import ArithmeticAccuracyEvaluator
from crucible_train.recipes.arithmetic.task import ArithmeticTask, arithmetic_rows

__all__ = [
    "arithmetic_reward_specs",
    "arithmetic_rl_data",
    "arithmetic_rl_setup",
]


def arithmetic_reward_specs(format_coef: float) -> list[dict[str, Any]]:
    """The arithmetic reward ``correct + format_coef * (format_ok - 1)`` as reward specs.

    ``exact_match`` of the stripped answer, not ``numeric_match``: the task's notion of
    correct is the exact string (``numeric_match`` would also accept ``07``, ``7.0`` or
    ``7 apples`` and change rewards). Components: ``correct`` (0/1) and
    ``format_penalty`` (0 or -1, weight ``format_coef``).
    """
    return [
        {"name": "exact_match", "label": "correct", "strip": True, "require_format_ok": True},
        {"name": "format", "label": "format_penalty", "weight": format_coef, "offset": -1.0},
    ]


def arithmetic_rl_data(
    renderer: Renderer,
    *,
    max_operand: int,
    groups_per_batch: int,
    group_size: int,
    seed: int,
    eval_problems: int,
    max_tokens: int,
    num_batches: int | None = None,
) -> tuple[PromptRowDataset, ArithmeticAccuracyEvaluator]:
    """The arithmetic prompt-row dataset (the train split in the task's seeded order,
    cycled) and the greedy held-out accuracy evaluator."""
    task = ArithmeticTask(max_operand=max_operand, seed=seed)
    dataset = PromptRowDataset(
        rows=arithmetic_rows(task.problems("train")),
        renderer=renderer,
        groups_per_batch=groups_per_batch,
        group_size=group_size,
        num_batches=num_batches,
    )
    evaluator = ArithmeticAccuracyEvaluator(
        problems=task.problems("test", limit=eval_problems),
        renderer=renderer,
        max_tokens=max_tokens,
    )
    return dataset, evaluator


def arithmetic_rl_setup(
    renderer: Renderer,
    *,
    metrics: MetricsSink,
    max_operand: int,
    groups_per_batch: int,
    group_size: int,
    seed: int,
    eval_every: int,
    eval_problems: int,
    max_tokens: int,
    num_batches: int | None = None,
) -> tuple[PromptRowDataset, EvaluatorRunner]:
    """:func:`arithmetic_rl_data` with its evaluator in a runner (``train distill``)."""
    dataset, evaluator = arithmetic_rl_data(
        renderer,
        max_operand=max_operand,
        groups_per_batch=groups_per_batch,
        group_size=group_size,
        seed=seed,
        eval_problems=eval_problems,
        max_tokens=max_tokens,
        num_batches=num_batches,
    )
    runner = EvaluatorRunner(evaluators=[evaluator], metrics=metrics, every=eval_every)
    return dataset, runner
