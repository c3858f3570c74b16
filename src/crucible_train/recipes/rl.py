"""``crucible-train train rl``: policy-gradient RL on the built-in arithmetic environment.

The recipe builds the arithmetic environments and the held-out accuracy evaluator of
:class:`RlConfig` and runs the core loop :func:`~crucible_train.core.training.rl.run_rl`.
"""

from __future__ import annotations

import attrs

from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.core.training.rl import RlLoopConfig, run_rl
from crucible_train.core.training.validators import (
    check_non_negative,
    check_optional_whole,
    check_whole,
)
from crucible_train.recipes.arithmetic.env import arithmetic_rl_setup
from crucible_train.recipes.arithmetic.task import DEFAULT_MAX_OPERAND
from crucible_train.recipes.settings import key_order

__all__ = ["RlConfig", "run_rl_job"]


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
    """Settings of the RL loop (``train.rl``) on the built-in arithmetic environment.

    The loop's own fields are described on
    :class:`~crucible_train.core.training.rl.RlLoopConfig`; the entries below are
    the task's fields and those whose meaning the recipe narrows.

    Args:
        groups_per_batch: groups (distinct problems) per iteration.
        group_size: samples per problem; rewards are centred within the group.
        eval_every: greedy held-out ``test/accuracy`` every N iterations (and at the end).
        eval_problems: held-out problems per evaluation.
        seed: seeds the problem order and every sampling call.
        max_operand: operands of the arithmetic problems range over ``0..max_operand``.
        format_coef: reward ``format_coef * (format_ok - 1)`` for a badly ended answer.
        start_from_step: which SFT checkpoint (its step) the CLI starts from; ``None``
            uses the SFT run's final checkpoint. The default 400 is a partly trained
            policy (sampled reward ~0.6) that leaves the reward headroom to rise.
    """

    groups_per_batch: int = attrs.field(default=16, validator=check_whole(1))
    group_size: int = attrs.field(default=8, validator=check_whole(1))
    eval_every: int = attrs.field(default=20, validator=check_whole(0))
    eval_problems: int = attrs.field(default=200, validator=check_whole(1))
    max_operand: int = attrs.field(default=DEFAULT_MAX_OPERAND, validator=check_whole(1))
    format_coef: float = attrs.field(default=0.1, validator=check_non_negative)
    start_from_step: int | None = attrs.field(default=400, validator=check_optional_whole(0))


def run_rl_job(ctx: JobContext, config: RlConfig) -> LoopResult:
    """``train rl``: the built-in arithmetic environment on ``ctx.training``."""
    dataset, evaluators = arithmetic_rl_setup(
        ctx.renderer,
        metrics=ctx.metrics,
        max_operand=config.max_operand,
        groups_per_batch=config.groups_per_batch,
        group_size=config.group_size,
        format_coef=config.format_coef,
        seed=config.seed,
        eval_every=config.eval_every,
        eval_problems=config.eval_problems,
        max_tokens=config.max_tokens,
        num_batches=config.max_steps,
    )
    return run_rl(
        config,
        training=ctx.training,
        dataset=dataset,
        metrics=ctx.metrics,
        run_store=ctx.run_store,
        evaluators=evaluators,
        progress=ctx.progress,
        stop=ctx.stop,
        resume=ctx.resume,
    )
