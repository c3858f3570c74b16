"""The built-in arithmetic environment for RL and distillation, and its held-out evaluator.

A prompt is the renderer's generation prompt of an :class:`ArithmeticProblem`; the reward
of an answer is ``correct + format_coef * (format_ok - 1)``: 1 for the exact answer, and a
small penalty when the turn did not end cleanly (no stop token, or unparseable). The
held-out ``test/accuracy`` is the greedy
:class:`~crucible_train.recipes.arithmetic.evaluator.ArithmeticAccuracyEvaluator`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import attrs

from crucible_train.core.evaluation.evaluators import EvaluatorRunner
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.envs import (
    Env,
    EnvGroupBuilder,
    GroupOf,
    PromptOnlyEnv,
    StepResult,
    StopSequences,
)
from crucible_train.errors import ConfigurationError
from crucible_train.ports.metrics import MetricsSink
from crucible_train.recipes.arithmetic.evaluator import ArithmeticAccuracyEvaluator
from crucible_train.recipes.arithmetic.task import ArithmeticProblem, ArithmeticTask
from crucible_train.types import ModelInput, TokensWithLogprobs

__all__ = [
    "ArithmeticEnv",
    "ArithmeticRLDataset",
    "arithmetic_rl_setup",
]


class ArithmeticEnv:
    """One question; one answer; reward ``correct + format_coef * (format_ok - 1)``.

    Args:
        problem: the question.
        renderer: builds the prompt and parses the answer.
        format_coef: weight of the format penalty.
    """

    def __init__(self, problem: ArithmeticProblem, renderer: Renderer, format_coef: float) -> None:
        self._problem = problem
        self._renderer = renderer
        self._format_coef = format_coef

    def initial_observation(self) -> tuple[ModelInput, StopSequences]:
        """The generation prompt of the question and the renderer's stop sequences."""
        prompt = self._renderer.build_generation_prompt(self._problem.prompt())
        return prompt, self._renderer.get_stop_sequences()

    def step(self, action: TokensWithLogprobs) -> StepResult:
        """Score the answer; the episode ends."""
        message, ok = self._renderer.parse_response(list(action.tokens))
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        format_ok = ok and action.stop_reason != "length"
        correct = format_ok and ArithmeticTask.is_correct(self._problem, text)
        reward = float(correct) + self._format_coef * (float(format_ok) - 1.0)
        return StepResult(
            reward=reward,
            episode_done=True,
            metrics={"correct": float(correct), "format": float(format_ok)},
        )


@attrs.frozen(kw_only=True)
class ArithmeticRLDataset:
    """Batches of ``groups_per_batch`` problems of the train split, ``group_size`` envs each.

    Args:
        task: the arithmetic task (its seeded train order is the batch order).
        renderer: chat format.
        groups_per_batch: problems per batch.
        group_size: samples per problem.
        format_coef: format penalty of :class:`ArithmeticEnv`.
        prompt_only: reward-free :class:`PromptOnlyEnv` (distillation) instead.
        num_batches: batches offered; beyond one pass the train split is cycled in the
            same order. ``None``: one pass (whole batches only).
    """

    task: ArithmeticTask
    renderer: Renderer
    groups_per_batch: int
    group_size: int
    format_coef: float = 0.1
    prompt_only: bool = False
    num_batches: int | None = None
    _problems: list[ArithmeticProblem] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems = self.task.problems("train")
        if len(problems) < self.groups_per_batch:
            raise ConfigurationError(
                f"groups_per_batch {self.groups_per_batch} is larger than the "
                f"{len(problems)} training problems"
            )
        object.__setattr__(self, "_problems", problems)

    def __len__(self) -> int:
        """``num_batches``, or the whole batches of one pass over the train split."""
        if self.num_batches is not None:
            return self.num_batches
        return len(self._problems) // self.groups_per_batch

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """The groups of batch ``index``."""
        start = index * self.groups_per_batch
        n = len(self._problems)
        chosen = [self._problems[(start + j) % n] for j in range(self.groups_per_batch)]
        stop = self.renderer.get_stop_sequences()
        builders: list[EnvGroupBuilder] = []
        for problem in chosen:
            make: Callable[[], Env]
            if self.prompt_only:
                prompt = self.renderer.build_generation_prompt(problem.prompt())
                make = functools.partial(PromptOnlyEnv, prompt, stop)
            else:
                make = functools.partial(ArithmeticEnv, problem, self.renderer, self.format_coef)
            builders.append(GroupOf(make, self.group_size))
        return builders


def arithmetic_rl_setup(
    renderer: Renderer,
    *,
    metrics: MetricsSink,
    max_operand: int,
    groups_per_batch: int,
    group_size: int,
    format_coef: float,
    seed: int,
    eval_every: int,
    eval_problems: int,
    max_tokens: int,
    prompt_only: bool = False,
    num_batches: int | None = None,
) -> tuple[ArithmeticRLDataset, EvaluatorRunner]:
    """The arithmetic dataset and the held-out accuracy evaluator of ``train rl|distill``."""
    task = ArithmeticTask(max_operand=max_operand, seed=seed)
    dataset = ArithmeticRLDataset(
        task=task,
        renderer=renderer,
        groups_per_batch=groups_per_batch,
        group_size=group_size,
        format_coef=format_coef,
        prompt_only=prompt_only,
        num_batches=num_batches,
    )
    evaluator = ArithmeticAccuracyEvaluator(
        problems=task.problems("test", limit=eval_problems),
        renderer=renderer,
        max_tokens=max_tokens,
    )
    runner = EvaluatorRunner(evaluators=[evaluator], metrics=metrics, every=eval_every)
    return dataset, runner
