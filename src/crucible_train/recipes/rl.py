"""``crucible-train train rl``: policy-gradient RL on the arithmetic task or any prompts.

The recipe turns the prompt rows of :class:`RlConfig` (the built-in arithmetic task, or a
dataset of prompt-only rows read through the DatasetStore port) into a
:class:`~crucible_train.core.training.prompt_rows.PromptRowDataset`, builds the reward
once from its specs (:func:`~crucible_train.core.rewards.build_rewards`), and runs the core
loop :func:`~crucible_train.core.training.rl.run_rl` with a
:class:`~crucible_train.core.training.rewarding.BatchRewarder`. Arithmetic goes the same
way: its rows carry ``answer`` and its reward is
:func:`~crucible_train.recipes.arithmetic.env.arithmetic_reward_specs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from crucible_train.core.datasets import ColumnNames
from crucible_train.core.evaluation.evaluators import Evaluator, EvaluatorRunner
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.core.training.prompt_rows import PromptRowDataset
from crucible_train.core.training.rewarding import (
    BatchRewarder,
    RewardSpecs,
    check_reward_specs,
)
from crucible_train.core.training.rl import RlLoopConfig, run_rl
from crucible_train.core.training.validators import (
    check_non_negative,
    check_optional_whole,
    check_whole,
)
from crucible_train.errors import ConfigurationError
from crucible_train.recipes.arithmetic.env import arithmetic_reward_specs, arithmetic_rl_data
from crucible_train.recipes.arithmetic.task import ARITHMETIC, DEFAULT_MAX_OPERAND
from crucible_train.recipes.prompts import (
    build_job_reward,
    load_prompt_rows,
    reward_test_evaluator,
)
from crucible_train.recipes.settings import key_order

__all__ = [
    "ARITHMETIC_RL_DEFAULTS",
    "DATASET_RL_DEFAULTS",
    "RlConfig",
    "run_rl_job",
]

ARITHMETIC_RL_DEFAULTS: Mapping[str, Any] = {"learning_rate": 8e-5, "max_tokens": 8}
"""``learning_rate`` and ``max_tokens`` of an arithmetic run left at null (README numbers)."""

DATASET_RL_DEFAULTS: Mapping[str, Any] = {"learning_rate": 2e-4, "max_tokens": 64}
"""``learning_rate`` and ``max_tokens`` of a dataset run left at null: short answers, and
the rate measured best on ``examples/next_letters`` (1e-4 barely moved the sampled reward,
3e-4 raised it but cost 3-6 points of greedy accuracy, 1e-3 collapsed in one step)."""


def _check_optional_positive(_instance: object, attribute: Any, value: Any) -> None:
    if value is not None and not value > 0:
        raise ConfigurationError(f"{attribute.name} must be > 0 or null, got {value!r}")


def _check_source(_instance: object, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(
            f"{attribute.name} must be 'arithmetic' or a dataset path, got {value!r}"
        )


def _check_rate(_instance: object, attribute: Any, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{attribute.name} must be in [0, 1], got {value!r}")


def _check_reward(instance: Any, _attribute: Any, value: Any) -> None:
    if value is not None:
        check_reward_specs(value, instance.max_reward_failure_rate)


@attrs.frozen(
    kw_only=True,
    field_transformer=key_order(
        "learning_rate",
        "groups_per_batch",
        "group_size",
        "max_steps",
        "max_tokens",
        "temperature",
        "loss_fn",
        "loss_fn_config",
        "kl_penalty_coef",
        "normalize_advantages",
        "eval_every",
        "eval_problems",
        "save_every",
        "seed",
        "dataset",
        "test_dataset",
        "prompt_key",
        "answer_key",
        "reward",
        "max_reward_failure_rate",
        "max_operand",
        "format_coef",
        "start_from_step",
        "beta1",
        "beta2",
        "eps",
        "grad_clip_norm",
    ),
)
class RlConfig(RlLoopConfig):
    """Settings of the RL loop (``train.rl``) on the arithmetic task or a prompt dataset.

    The loop's own fields are described on
    :class:`~crucible_train.core.training.rl.RlLoopConfig`; the entries below are
    the task's fields and those whose meaning the recipe narrows.

    Args:
        learning_rate: constant AdamW learning rate; ``None``: the task's default, 8e-5
            for arithmetic, 2e-4 for a dataset.
        groups_per_batch: groups (distinct prompts) per iteration.
        group_size: samples per prompt; rewards are centred within the group.
        max_tokens: most tokens sampled per answer; ``None``: the task's default, 8 for
            arithmetic, 64 for a dataset.
        eval_every: greedy held-out evaluation (``test/accuracy`` for arithmetic,
            ``test/reward`` for a test_dataset) every N iterations (and at the end).
        eval_problems: held-out problems (or test_dataset rows, at most) per evaluation.
        seed: seeds the prompt order and every sampling call.
        dataset: ``"arithmetic"`` (the built-in task) or a dataset of prompt-only rows
            (JSONL, JSON, CSV, Parquet or a Hugging Face dataset directory), read through
            the DatasetStore port.
        test_dataset: prompt-only rows answered greedily and scored with the run's
            reward on the eval cadence (``test/reward``, ``test/<label>``); ``None``:
            none.
        prompt_key: the prompt column (a string or a list of messages).
        answer_key: the answer column every row must have (handed to the reward with
            the other columns); ``None`` when the reward needs none.
        reward: a reward name, a ``package.module:function`` path, or a list of
            ``{name, weight, ...options}`` specs (see docs/rewards.md); ``None``: the
            task's reward, arithmetic's ``correct + format_coef * (format_ok - 1)``, or
            ``exact_match`` against answer_key for a dataset.
        max_reward_failure_rate: share of an iteration's samples a reward component may
            fail on (raise, NaN, non-number; those samples are left out) before the run
            stops with the first failure.
        max_operand: operands of the arithmetic problems range over ``0..max_operand``.
        format_coef: arithmetic reward ``format_coef * (format_ok - 1)`` for a badly
            ended answer.
        start_from_step: which SFT checkpoint (its step) the CLI starts from; ``None``
            uses the SFT run's final checkpoint. The default 400 is a partly trained
            policy (sampled reward ~0.6) that leaves the reward headroom to rise.
    """

    # The loop's concrete values come from loop_config(): null here means the task's.
    learning_rate: float | None = attrs.field(  # type: ignore[assignment]
        default=None, validator=_check_optional_positive
    )
    max_tokens: int | None = attrs.field(  # type: ignore[assignment]
        default=None, validator=check_optional_whole(1)
    )
    groups_per_batch: int = attrs.field(default=16, validator=check_whole(1))
    group_size: int = attrs.field(default=8, validator=check_whole(1))
    eval_every: int = attrs.field(default=20, validator=check_whole(0))
    eval_problems: int = attrs.field(default=200, validator=check_whole(1))
    dataset: str = attrs.field(default=ARITHMETIC, validator=_check_source)
    test_dataset: str | None = attrs.field(default=None, validator=_check_source)
    prompt_key: str = "prompt"
    answer_key: str | None = "answer"
    max_reward_failure_rate: float = attrs.field(default=0.1, validator=_check_rate)
    reward: str | list[str | dict[str, Any]] | dict[str, Any] | None = attrs.field(
        default=None, validator=_check_reward
    )
    max_operand: int = attrs.field(default=DEFAULT_MAX_OPERAND, validator=check_whole(1))
    format_coef: float = attrs.field(default=0.1, validator=check_non_negative)
    start_from_step: int | None = attrs.field(default=400, validator=check_optional_whole(0))

    @property
    def is_arithmetic(self) -> bool:
        """Whether the prompts are the built-in arithmetic task's."""
        return self.dataset == ARITHMETIC

    def reward_specs(self) -> RewardSpecs:
        """The reward of the run: ``reward``, or the task's when it is ``None``."""
        if self.reward is not None:
            return self.reward
        if self.is_arithmetic:
            return arithmetic_reward_specs(self.format_coef)
        return {"name": "exact_match", "column": self.answer_key or "answer"}

    def loop_config(self) -> RlLoopConfig:
        """The core loop's settings, with the task's defaults filled in."""
        defaults = ARITHMETIC_RL_DEFAULTS if self.is_arithmetic else DATASET_RL_DEFAULTS
        values = {f.name: getattr(self, f.name) for f in attrs.fields(RlLoopConfig)}
        for key, default in defaults.items():
            if values[key] is None:
                values[key] = default
        return RlLoopConfig(**values)

    def columns(self) -> ColumnNames:
        """The column names the prompt rows are read with."""
        return ColumnNames(prompt_key=self.prompt_key, answer_key=self.answer_key)


def _dataset_setup(
    ctx: JobContext, config: RlConfig, loop: RlLoopConfig
) -> tuple[PromptRowDataset, list[Evaluator]]:
    if config.is_arithmetic:
        dataset, accuracy = arithmetic_rl_data(
            ctx.renderer,
            max_operand=config.max_operand,
            groups_per_batch=config.groups_per_batch,
            group_size=config.group_size,
            seed=config.seed,
            eval_problems=config.eval_problems,
            max_tokens=loop.max_tokens,
            num_batches=config.max_steps,
        )
        return dataset, [accuracy]
    rows = load_prompt_rows(ctx.datasets, config.dataset, config.columns())
    dataset = PromptRowDataset(
        rows=rows,
        renderer=ctx.renderer,
        groups_per_batch=config.groups_per_batch,
        group_size=config.group_size,
        num_batches=config.max_steps,
        shuffle_seed=config.seed,
    )
    return dataset, []


def run_rl_job(ctx: JobContext, config: RlConfig) -> LoopResult:
    """``train rl``: the prompt rows, reward and evaluators of ``config`` on ``ctx.training``.

    Raises:
        ConfigurationError: a reward spec is invalid or needs a client the context lacks;
            ``groups_per_batch`` is larger than the dataset.
        InvalidDataError: a dataset row is malformed or lacks a column; a dataset is empty.
        RewardError: (during the run) a reward component failed on more than
            ``max_reward_failure_rate`` of an iteration's samples.
    """
    loop = config.loop_config()
    reward = build_job_reward(ctx, config.reward_specs(), config.max_reward_failure_rate)
    dataset, evaluators = _dataset_setup(ctx, config, loop)
    if config.test_dataset is not None:
        evaluators.append(
            reward_test_evaluator(
                ctx.datasets,
                config.test_dataset,
                renderer=ctx.renderer,
                reward=reward,
                max_tokens=loop.max_tokens,
                limit=config.eval_problems,
                names=config.columns(),
            )
        )
    runner = (
        EvaluatorRunner(evaluators=evaluators, metrics=ctx.metrics, every=config.eval_every)
        if evaluators
        else None
    )
    return run_rl(
        loop,
        training=ctx.training,
        dataset=dataset,
        rewarder=BatchRewarder(reward=reward, renderer=ctx.renderer),
        metrics=ctx.metrics,
        run_store=ctx.run_store,
        evaluators=runner,
        progress=ctx.progress,
        stop=ctx.stop,
        resume=ctx.resume,
    )
