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
from typing import Any, Literal

import attrs
import numpy as np

from crucible_train.core.datasets import Message
from crucible_train.core.evaluation.evaluators import EvaluatorRunner
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.envs import RLDataset
from crucible_train.core.training.job import LoopResult
from crucible_train.core.training.progress import Progress
from crucible_train.core.training.rl import (
    PolicyLoopSettings,
    adam_params,
    check_loss_name,
    run_policy_loop,
    validate_loss_fn,
)
from crucible_train.core.training.rollouts import PolicyDatum, reference_logprobs
from crucible_train.core.training.validators import (
    check_non_negative,
    check_optional_whole,
    check_positive,
    check_whole,
)
from crucible_train.errors import ConfigurationError
from crucible_train.ports.metrics import MetricsSink
from crucible_train.ports.run_store import RunStore
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import TrainingClient
from crucible_train.types import ModelInput, SamplingParams

__all__ = [
    "DistillLoopConfig",
    "TeacherKLEvaluator",
    "check_same_format",
    "distillation_advantages",
    "run_distill",
]


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
            "tokenizer (the teacher scores the student's token ids): "
            + "; ".join(problems)
            + "; choose a teacher trained with this run's renderer and tokenizer, or give "
            "the student the teacher's (train.renderer, tokenizer, train.distill.student)"
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


class TeacherKLEvaluator:
    """``teacher_kl`` on held-out prompts: the student's samples scored by the teacher.

    Each prompt gets one student sample (``temperature``, ``seed``, the renderer's stop
    sequences, at most ``max_tokens`` tokens); the teacher scores the same tokens and the
    result is ``sum(log q - log p_teacher) / tokens``, the training metric's estimate of
    ``KL(student || teacher)`` on prompts the student never trained on. The runner logs it
    as ``test/teacher_kl``.

    Args:
        prompts: the held-out prompts (message lists).
        renderer: the chat format of teacher and student.
        teacher: scores the student's samples.
        max_tokens: most tokens sampled per answer.
        temperature: the student's sampling temperature (as in training).
        seed: sampling seed (the same samples for the same weights).
        name: the metric key.

    Raises:
        ConfigurationError: no prompts.
    """

    client_kind: Literal["sampling"] = "sampling"

    def __init__(
        self,
        *,
        prompts: Sequence[Sequence[Message]],
        renderer: Renderer,
        teacher: SamplingClient,
        max_tokens: int,
        temperature: float,
        seed: int,
        name: str = "teacher_kl",
    ) -> None:
        if not prompts:
            raise ConfigurationError("TeacherKLEvaluator needs at least one held-out prompt")
        self._prompts = [renderer.build_generation_prompt(list(p)) for p in prompts]
        self._teacher = teacher
        self._params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            stop=renderer.get_stop_sequences(),
            seed=seed,
        )
        self._name = name

    @property
    def name(self) -> str:
        """The metric key."""
        return self._name

    def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Sample every prompt, score the samples with the teacher, return the mean KL.

        Raises:
            SamplingClientError: the student's or the teacher's sampler failed.
        """
        futures = [sampling_client.sample(p, 1, self._params) for p in self._prompts]
        samples = [future.result().sequences[0] for future in futures]
        scored = [
            self._teacher.compute_logprobs(
                ModelInput.from_ints([*prompt.to_ints(), *sample.tokens])
            )
            for prompt, sample in zip(self._prompts, samples, strict=True)
        ]
        total, count = 0.0, 0
        for prompt, sample, future in zip(self._prompts, samples, scored, strict=True):
            teacher = future.result()[prompt.length :]
            if sample.logprobs is None:
                continue  # the backend reported no log-probabilities: nothing to compare
            pairs = zip(sample.logprobs, teacher, strict=True)
            total += sum(q - (0.0 if p is None else p) for q, p in pairs)
            count += len(sample.tokens)
        return {self._name: total / count if count else 0.0}


@attrs.frozen(kw_only=True)
class DistillLoopConfig:
    """Settings of the on-policy distillation loop (:func:`run_distill`); a recipe's config
    adds its prompts' fields.

    Args:
        learning_rate: constant AdamW learning rate of the student.
        max_steps: iterations.
        max_tokens: most tokens sampled per answer.
        temperature: student sampling temperature.
        kl_coef: weight of the reverse-KL advantage.
        loss_fn: policy loss (``importance_sampling`` by default).
        loss_fn_config: passed to the loss.
        save_every: resumable checkpoint every N iterations; 0 only at the end.
        seed: sampling seeds.
        beta1: AdamW beta1.
        beta2: AdamW beta2.
        eps: AdamW epsilon.
        grad_clip_norm: clip the global gradient norm to this (0: no clipping).

    Raises:
        ConfigurationError: a field is out of range (the first one, named).
    """

    learning_rate: float = attrs.field(default=1e-2, validator=check_positive)
    max_steps: int | None = attrs.field(default=3000, validator=check_optional_whole(1))
    max_tokens: int = attrs.field(default=8, validator=check_whole(1))
    temperature: float = attrs.field(default=1.0, validator=check_non_negative)
    kl_coef: float = attrs.field(default=1.0, validator=check_positive)
    loss_fn: str = attrs.field(default="importance_sampling", validator=check_loss_name)
    loss_fn_config: Mapping[str, float] | None = None
    save_every: int = attrs.field(default=500, validator=check_whole(0))
    seed: int = attrs.field(default=0, validator=check_whole(0))
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = attrs.field(default=1.0, validator=check_non_negative)


def run_distill(
    config: DistillLoopConfig,
    *,
    training: TrainingClient,
    teacher: SamplingClient,
    dataset: RLDataset,
    metrics: MetricsSink,
    run_store: RunStore,
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
        run_store: the run's checkpoint records and metric rewind.
        evaluators: e.g. the student's held-out greedy ``test/accuracy``.
        progress: live progress reporting.
        stop: set on Ctrl-C.
        resume: continue from the last resumable record of ``run_store``.
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
        run_store=run_store,
        shaper=shape,
        evaluators=evaluators,
        progress=progress,
        stop=stop,
        resume=resume,
    )
