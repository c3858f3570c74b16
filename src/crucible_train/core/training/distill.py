"""On-policy distillation: the student samples, the teacher scores, reverse KL trains.

Each iteration the student (the training client) answers prompt-only environments (reward
0); the teacher (a :class:`~crucible_train.ports.SamplingClient`, e.g. the final SFT
sampler) computes the log-probability of the very same tokens with ``compute_logprobs``.
Per action token ``r_t = log q_student(x_t) - log p_teacher(x_t)`` (a one-sample estimate
of the reverse KL); the advantage is ``-kl_coef * r_t`` and the update is the usual
``importance_sampling`` step, so the student moves probability towards tokens the teacher
likes more than it does. ``teacher_kl = sum(r) / sum(mask)`` is the mean per-token
estimate of ``KL(student || teacher)`` on the student's own samples.

Teacher and student must share the chat format and the tokenizer: the teacher scores token
ids, so a different vocabulary silently scores nonsense. :func:`check_same_format` refuses
that combination.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from crucible_train.core.evaluation.evaluators import EvaluatorRunner
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.core.training.progress import Progress
from crucible_train.core.training.rl import (
    PolicyDatum,
    PolicyLoopSettings,
    RLDataset,
    adam_params,
    check_loss_name,
    check_non_negative,
    check_optional_whole,
    check_positive,
    check_whole,
    reference_logprobs,
    run_policy_loop,
    validate_loss_fn,
)
from crucible_train.errors import ConfigurationError
from crucible_train.ports.metrics import MetricsSink
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import TrainingClient

__all__ = [
    "DEFAULT_STUDENT",
    "DistillConfig",
    "check_same_format",
    "distillation_advantages",
    "run_distill",
    "run_distill_job",
]

DEFAULT_STUDENT: Mapping[str, Any] = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 16,
    "intermediate_size": 192,
    "model_path": None,
}
"""Local-engine overrides of the default (fresh, smaller) student."""


def check_same_format(
    teacher_renderer_name: str,
    student_renderer_name: str,
    teacher_vocab_size: int,
    student_vocab_size: int,
) -> None:
    """Refuse a teacher and a student that do not share renderer and tokenizer.

    Raises:
        ConfigurationError: the renderers or vocabulary sizes differ (both named).
    """
    problems = []
    if teacher_renderer_name != student_renderer_name:
        problems.append(
            f"renderers differ (teacher {teacher_renderer_name!r}, "
            f"student {student_renderer_name!r})"
        )
    if teacher_vocab_size != student_vocab_size:
        problems.append(
            f"tokenizer vocabularies differ (teacher {teacher_vocab_size}, "
            f"student {student_vocab_size})"
        )
    if problems:
        raise ConfigurationError(
            "distillation needs a teacher and a student with the same chat format and "
            "tokenizer (the teacher scores the student's token ids): " + "; ".join(problems)
        )


def distillation_advantages(
    items: Sequence[PolicyDatum],
    teacher_lps: Sequence[np.ndarray[Any, np.dtype[np.float32]]],
    kl_coef: float,
) -> tuple[list[PolicyDatum], float]:
    """Add ``-kl_coef * mask * (r_t - mean(r))`` to the advantages, ``r = log q - log p_teacher``.

    The batch mean of ``r`` over action tokens is a constant baseline: it leaves the
    expected gradient of the reverse KL unchanged but removes the huge common offset a
    fresh student's samples have (every token is unlikely under the teacher), which
    otherwise pushes all sampled tokens down alike and drowns the useful differences.

    Returns the datums and ``teacher_kl = sum(r) / sum(mask)``.
    """
    rs = [
        (item.array("logprobs") - teacher) * item.mask
        for item, teacher in zip(items, teacher_lps, strict=True)
    ]
    total = float(sum(float(r.sum()) for r in rs))
    count = float(sum(float(item.mask.sum()) for item in items))
    mean = total / count if count else 0.0
    out = [
        item.with_advantages(
            (item.array("advantages") - kl_coef * (r - mean * item.mask)).astype(np.float32)
        )
        for item, r in zip(items, rs, strict=True)
    ]
    return out, mean


@attrs.frozen(kw_only=True)
class DistillConfig:
    """Settings of on-policy distillation (``train.distill``) on arithmetic prompts.

    The defaults distil the final SFT model into a fresh 2-layer, width-64 student. A fresh
    student first learns the answer format and the prompt-independent distribution of
    answers (its log-probabilities were identical across problems after 150 iterations);
    reading the operands takes much longer, because each sampled token carries only a
    fraction of a label's information. Measured with these defaults (3,000 iterations,
    ~21 minutes on 2 CPU cores): held-out greedy ``test/accuracy`` 0 -> 0.035 at 1,000,
    0.065 at 1,500, 0.455 at 2,000, 0.625 at 3,000 iterations; ``teacher_kl`` 3.15 in
    the first tenth -> 0.77 in the last. 150 iterations (the earlier default) stayed
    below 0.01.

    Args:
        learning_rate: constant AdamW learning rate of the student.
        groups_per_batch: prompts per iteration.
        group_size: student samples per prompt.
        max_steps: iterations.
        max_tokens: most tokens sampled per answer.
        temperature: student sampling temperature.
        kl_coef: weight of the reverse-KL advantage.
        loss_fn: policy loss (``importance_sampling`` by default).
        loss_fn_config: passed to the loss.
        eval_every: greedy held-out ``test/accuracy`` of the student every N iterations.
        eval_problems: held-out problems per evaluation.
        save_every: resumable checkpoint every N iterations; 0 only at the end.
        seed: problem order and sampling seeds.
        max_operand: operand range of the arithmetic prompts.
        teacher_step: which SFT checkpoint (its step) the CLI uses as teacher; ``None``
            the final one.
        student: local-engine settings the CLI applies to the student (a fresh, smaller
            model by default); empty keeps the SFT checkpoint as the student's start.
        beta1, beta2, eps, grad_clip_norm: AdamW settings.
    """

    learning_rate: float = attrs.field(default=1e-2, validator=check_positive)
    groups_per_batch: int = attrs.field(default=32, validator=check_whole(1))
    group_size: int = attrs.field(default=4, validator=check_whole(1))
    max_steps: int | None = attrs.field(default=3000, validator=check_optional_whole(1))
    max_tokens: int = attrs.field(default=8, validator=check_whole(1))
    temperature: float = attrs.field(default=1.0, validator=check_non_negative)
    kl_coef: float = attrs.field(default=1.0, validator=check_positive)
    loss_fn: str = attrs.field(default="importance_sampling", validator=check_loss_name)
    loss_fn_config: Mapping[str, float] | None = None
    eval_every: int = attrs.field(default=250, validator=check_whole(0))
    eval_problems: int = attrs.field(default=200, validator=check_whole(1))
    save_every: int = attrs.field(default=500, validator=check_whole(0))
    seed: int = attrs.field(default=0, validator=check_whole(0))
    max_operand: int = attrs.field(default=99, validator=check_whole(1))
    teacher_step: int | None = attrs.field(default=None, validator=check_optional_whole(0))
    student: Mapping[str, Any] = attrs.field(factory=lambda: dict(DEFAULT_STUDENT))
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = attrs.field(default=1.0, validator=check_non_negative)


def run_distill(
    config: DistillConfig,
    *,
    training: TrainingClient,
    teacher: SamplingClient,
    dataset: RLDataset,
    metrics: MetricsSink,
    run_dir: str | Path,
    evaluators: EvaluatorRunner | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    resume: bool = False,
) -> LoopResult:
    """Distil ``teacher`` into ``training`` on the student's own samples of ``dataset``.

    Args:
        config: loop settings.
        training: the student.
        teacher: scores the student's samples (same renderer and tokenizer).
        dataset: prompt-only environments (reward 0), batch by batch.
        metrics: where step metrics go (``teacher_kl``, ``entropy``, ...).
        run_dir: holds ``checkpoints.jsonl`` and ``metrics.jsonl``.
        evaluators: e.g. the student's held-out greedy ``test/accuracy``.
        progress: live progress reporting.
        stop: set on Ctrl-C.
        resume: continue from the last resumable record of ``run_dir``.
    """

    def shape(items: list[PolicyDatum]) -> tuple[list[PolicyDatum], dict[str, float]]:
        new, kl = distillation_advantages(items, reference_logprobs(items, teacher), config.kl_coef)
        return new, {"teacher_kl": kl}

    settings = PolicyLoopSettings(
        description="distill",
        learning_rate=config.learning_rate,
        adam=adam_params(
            config.learning_rate, config.beta1, config.beta2, config.eps, config.grad_clip_norm
        ),
        max_steps=config.max_steps,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        loss_fn=validate_loss_fn(config.loss_fn),
        loss_fn_config=config.loss_fn_config,
        normalize_advantages=False,
        save_every=config.save_every,
        seed=config.seed,
    )
    return run_policy_loop(
        settings,
        training=training,
        dataset=dataset,
        metrics=metrics,
        run_dir=run_dir,
        shaper=shape,
        evaluators=evaluators,
        progress=progress,
        stop=stop,
        resume=resume,
    )


def run_distill_job(ctx: JobContext, config: DistillConfig) -> LoopResult:
    """``train distill``: arithmetic prompts, ``ctx.training`` the student, ``ctx.teacher``.

    Raises:
        ConfigurationError: the context has no teacher.
    """
    from crucible_train.core.training.arithmetic_env import arithmetic_rl_setup

    if ctx.teacher is None:
        raise ConfigurationError(
            "distillation needs a teacher: run `train sft` first or name a teacher checkpoint"
        )
    dataset, evaluators = arithmetic_rl_setup(
        ctx.renderer,
        metrics=ctx.metrics,
        max_operand=config.max_operand,
        groups_per_batch=config.groups_per_batch,
        group_size=config.group_size,
        format_coef=0.0,
        seed=config.seed,
        eval_every=config.eval_every,
        eval_problems=config.eval_problems,
        max_tokens=config.max_tokens,
        prompt_only=True,
        num_batches=config.max_steps,
    )
    return run_distill(
        config,
        training=ctx.training,
        teacher=ctx.teacher,
        dataset=dataset,
        metrics=ctx.metrics,
        run_dir=ctx.run_dir,
        evaluators=evaluators,
        progress=ctx.progress,
        stop=ctx.stop,
        resume=ctx.resume,
    )
