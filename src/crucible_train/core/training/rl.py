"""Reinforcement learning on sampled rollouts: the loop and its settings.

Rollouts, advantages, datums, the KL penalty and the metrics over them live in
:mod:`crucible_train.core.training.rollouts` (shared with distillation).

The environments come from the caller through the contracts of
:mod:`crucible_train.core.training.envs` (an :class:`~crucible_train.core.training.envs.RLDataset`
of group builders); this module knows no task.

One iteration: snapshot the current weights into a sampler, roll out every group (one
``sample(prompt, num_samples=n)`` call per distinct observation, so a group sharing its
prompt costs a single batched call), centre each group's total rewards on their mean
(optionally divide by their standard deviation), turn each trajectory into datums
(observations that extend the previous sequence are merged into one datum; action tokens
carry the advantage, everything else advantage 0), optionally add a KL penalty against a
reference policy, then one ``forward_backward`` with the policy loss and one ``optim_step``.

Sampling seeds are derived from ``(seed, iteration, group, turn)``, so a resumed run draws
exactly the rollouts an uninterrupted one would. Checkpoint records name the NEXT batch and
are written after the state is saved and the step's metrics are logged; Ctrl-C saves an
``interrupted-*`` checkpoint (see :mod:`crucible_train.core.training.sft`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from crucible_train.core.evaluation.evaluators import EvaluatorRunner
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.core.training.envs import EnvGroupBuilder, RLDataset, TrajectoryGroup
from crucible_train.core.training.job import LoopResult, close_loop
from crucible_train.core.training.progress import NullProgress, Progress
from crucible_train.core.training.rollouts import (
    PolicyDatum,
    apply_kl_penalty,
    completion_metrics,
    compute_advantages,
    derive_seed,
    groups_to_datums,
    policy_metrics,
    reference_logprobs,
    rollout_groups,
    trajectory_metrics,
    trajectory_to_datums,
)
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
from crucible_train.types import LOSS_FN_NAMES, AdamParams, LossFnName

__all__ = [
    "POLICY_LOSSES",
    "REFERENCE_KEY",
    "PolicyDatum",
    "PolicyLoopSettings",
    "Rewarder",
    "RlLoopConfig",
    "apply_kl_penalty",
    "compute_advantages",
    "derive_seed",
    "groups_to_datums",
    "policy_metrics",
    "reference_logprobs",
    "rollout_groups",
    "run_policy_loop",
    "run_rl",
    "trajectory_metrics",
    "trajectory_to_datums",
    "validate_loss_fn",
]

POLICY_LOSSES: tuple[LossFnName, ...] = tuple(n for n in LOSS_FN_NAMES if n != "cross_entropy")
"""Losses a policy-gradient loop accepts (``importance_sampling`` is the default)."""


# --- config -------------------------------------------------------------------------------


def validate_loss_fn(name: str) -> LossFnName:
    """``name`` if it is a policy loss; else a ConfigurationError listing the valid ones."""
    for valid in POLICY_LOSSES:
        if name == valid:
            return valid
    raise ConfigurationError(f"loss_fn is {name!r}; use one of {list(POLICY_LOSSES)}")


def check_loss_name(_instance: object, _attribute: object, value: str) -> None:
    """attrs validator: ``value`` is a policy loss."""
    validate_loss_fn(value)


@attrs.frozen(kw_only=True)
class RlLoopConfig:
    """Settings of the RL loop (:func:`run_rl`); a recipe's config adds its task's fields.

    Args:
        learning_rate: constant AdamW learning rate.
        max_steps: iterations to run (capped by the dataset's batches).
        max_tokens: most tokens sampled per action.
        temperature: sampling temperature of the rollouts.
        loss_fn: ``importance_sampling``, ``ppo``, ``cispo`` or ``dro``.
        loss_fn_config: passed to the loss (``clip_low_threshold``, ``beta``, ...).
        kl_penalty_coef: weight of the KL penalty against the initial policy; 0 disables.
        normalize_advantages: divide centred rewards by the group's standard deviation.
        save_every: resumable checkpoint every N iterations; 0 only at the end.
        seed: seeds every sampling call.
        beta1: AdamW beta1.
        beta2: AdamW beta2.
        eps: AdamW epsilon.
        grad_clip_norm: clip the global gradient norm to this (0: no clipping).

    Raises:
        ConfigurationError: a field is out of range (the first one, named).
    """

    learning_rate: float = attrs.field(default=8e-5, validator=check_positive)
    max_steps: int | None = attrs.field(default=40, validator=check_optional_whole(1))
    max_tokens: int = attrs.field(default=8, validator=check_whole(1))
    temperature: float = attrs.field(default=1.0, validator=check_non_negative)
    loss_fn: str = attrs.field(default="importance_sampling", validator=check_loss_name)
    loss_fn_config: Mapping[str, float] | None = None
    kl_penalty_coef: float = attrs.field(default=0.0, validator=check_non_negative)
    normalize_advantages: bool = False
    save_every: int = attrs.field(default=20, validator=check_whole(0))
    seed: int = attrs.field(default=0, validator=check_whole(0))
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = attrs.field(default=1.0, validator=check_non_negative)

    def adam(self) -> AdamParams:
        """AdamW parameters of one step."""
        return adam_params(
            self.learning_rate, self.beta1, self.beta2, self.eps, self.grad_clip_norm
        )


def adam_params(lr: float, beta1: float, beta2: float, eps: float, clip: float) -> AdamParams:
    """AdamW parameters of one policy step (no weight decay)."""
    return AdamParams(learning_rate=lr, beta1=beta1, beta2=beta2, eps=eps, grad_clip_norm=clip)


# --- the loop -----------------------------------------------------------------------------

Shaper: TypeAlias = Callable[[list[PolicyDatum]], tuple[list[PolicyDatum], dict[str, float]]]
"""Adjusts a batch's datums (KL penalty, distillation advantages) and reports metrics."""

Rewarder: TypeAlias = Callable[
    [Sequence[EnvGroupBuilder], Sequence[TrajectoryGroup]],
    tuple[list[TrajectoryGroup], dict[str, float]],
]
"""Rewards a batch's rollouts after sampling (given the batch's group builders): returns
the groups to train on, with their final rewards, and metrics (see
:class:`~crucible_train.core.training.rewarding.BatchRewarder`)."""


@attrs.frozen(kw_only=True)
class PolicyLoopSettings:
    """What the RL and distillation loops share (built from their configs)."""

    description: str
    learning_rate: float
    adam: AdamParams
    max_steps: int | None
    max_tokens: int
    temperature: float
    loss_fn: LossFnName
    loss_fn_config: Mapping[str, float] | None
    normalize_advantages: bool
    save_every: int
    seed: int


def run_policy_loop(
    settings: PolicyLoopSettings,
    *,
    training: TrainingClient,
    dataset: RLDataset,
    metrics: MetricsSink,
    run_store: RunStore,
    shaper: Shaper | None = None,
    rewarder: Rewarder | None = None,
    evaluators: EvaluatorRunner | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    resume: bool = False,
    record_extra: Mapping[str, Any] | None = None,
) -> LoopResult:
    """The sampling → advantages → datums → update loop of RL and distillation.

    Args:
        settings: loop settings.
        training: the policy being trained.
        dataset: batch ``i`` of group builders.
        metrics: step metrics (evaluator metrics go through ``evaluators``).
        run_store: the run's checkpoint records and metric rewind.
        shaper: called on each batch's datums after the advantages are set.
        rewarder: called on each batch's rollouts before the advantages (a reward over
            the rows, scored for the whole batch at once).
        evaluators: run with the iteration's sampler before iterations ``0, every, ...``
            and after the last one.
        progress: live progress reporting.
        stop: when set (Ctrl-C), the current iteration finishes, a resumable checkpoint
            is saved and the loop returns with ``interrupted=True``.
        resume: continue from the last resumable record of ``run_store``.
        record_extra: extra keys written into every checkpoint record.

    Raises:
        ConfigurationError: the dataset has no batches.
    """
    progress = progress or NullProgress()
    stop = stop or threading.Event()
    log = CheckpointLog(run_store)
    total = len(dataset)
    if total == 0:
        raise ConfigurationError("the RL dataset has no batches; nothing to train on")
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    extra = dict(record_extra or {})
    start, resumed_from = 0, None
    if resume:
        record = log.last_resumable()
        if record is not None:
            if record.final:
                progress.note(
                    f"run in {run_store.location} already finished (checkpoint {record.name!r})"
                )
                return LoopResult(
                    steps_done=record.step,
                    total_steps=total,
                    interrupted=False,
                    resumed_from=record.step,
                    final_record=record,
                    last_metrics={},
                )
            training.load_state(record.state_path or "").result()
            start = resumed_from = record.step
            run_store.rewind_metrics(start)
            progress.note(f"resumed from checkpoint {record.name!r} at batch {start}")
    progress.start(total, start, settings.description)
    last: dict[str, float] = {}

    def snapshot() -> SamplingClient:
        path = training.save_weights_for_sampler(f"{settings.description}-sampler").result()
        return training.create_sampling_client(path)

    step = start
    while step < total and not stop.is_set():
        began = time.perf_counter()
        sampler = snapshot()
        if evaluators is not None and evaluators.is_due(step):
            evaluated = time.perf_counter()
            last.update(
                evaluators.maybe_run(step, training_client=training, sampling_client=sampler)
            )
            began += time.perf_counter() - evaluated  # time/* leave the evaluation out
        builders = dataset.get_batch(step)
        rolled = time.perf_counter()
        groups = rollout_groups(
            builders,
            sampler,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            seed=derive_seed(settings.seed, step),
        )
        sampled = time.perf_counter()
        step_metrics = completion_metrics(groups)
        sampled_tokens = step_metrics.pop("completion/tokens_sum", 0.0)
        if rewarder is not None:
            groups, rewarded = rewarder(builders, groups)
            step_metrics.update(rewarded)
        rewarded_at = time.perf_counter()
        advantages = compute_advantages(groups, normalize=settings.normalize_advantages)
        items = groups_to_datums(groups, advantages)
        step_metrics.update(trajectory_metrics(groups))
        if shaper is not None and items:
            items, shaped = shaper(items)
            step_metrics.update(shaped)
        optim_metrics: Mapping[str, float] = {}
        if items:
            fb = training.forward_backward(
                [i.datum for i in items], settings.loss_fn, settings.loss_fn_config
            )
            optim = training.optim_step(settings.adam)
            out = fb.result()
            optim_metrics = optim.result().metrics
            train_lps = [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]
            step_metrics.update(policy_metrics(items, train_lps))
        else:
            progress.note(f"iteration {step}: no trajectory has a reward; nothing trained")
        now = time.perf_counter()
        step_metrics.update(
            {
                "lr": settings.learning_rate,
                "progress": (step + 1) / total,
                "num_datums": float(len(items)),
                "num_action_tokens": float(sum(i.mask.sum() for i in items)),
                "time/sample_s": sampled - began,
                "time/reward_s": rewarded_at - sampled,
                "time/train_s": now - rewarded_at,
                "time/step_s": now - began,
                "time/sample_tokens_per_s": sampled_tokens / max(sampled - rolled, 1e-9),
            }
        )
        for key, value in optim_metrics.items():
            step_metrics[f"optim/{key}"] = float(value)
        step_metrics = {k: v for k, v in step_metrics.items() if not math.isnan(v)}
        metrics.log_metrics(dict(step_metrics), step=step)
        last.update(step_metrics)
        progress.advance(step, last)
        step += 1
        if settings.save_every and step % settings.save_every == 0 and step < total:
            name = f"{step:06d}"
            state = training.save_state(name)
            sampler_path = training.save_weights_for_sampler(name)
            log.append(
                CheckpointRecord(
                    name=name,
                    step=step,
                    batch=step,
                    state_path=state.result(),
                    sampler_path=sampler_path.result(),
                    extra=extra,
                )
            )
    interrupted = step < total
    if not interrupted and evaluators is not None:
        last.update(
            evaluators.maybe_run(
                total, training_client=training, sampling_client=snapshot, force=True
            )
        )
    return close_loop(
        training,
        log,
        progress,
        step=step,
        total=total,
        stopped_at=(0, step),
        finished_at=(0, total),
        resumed_from=resumed_from,
        last=last,
        extra=extra,
    )


REFERENCE_KEY = "reference_sampler_path"
"""Checkpoint-record key of the KL reference's weights (kept fixed across resume)."""


def run_rl(
    config: RlLoopConfig,
    *,
    training: TrainingClient,
    dataset: RLDataset,
    metrics: MetricsSink,
    run_store: RunStore,
    evaluators: EvaluatorRunner | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    resume: bool = False,
    reference: SamplingClient | None = None,
    rewarder: Rewarder | None = None,
) -> LoopResult:
    """Train ``training`` with policy-gradient RL on ``dataset``; see the module docstring.

    Args:
        config: loop settings.
        training: the policy.
        dataset: the environments, batch by batch.
        metrics: where step metrics go.
        run_store: the run's checkpoint records and metric rewind.
        evaluators: e.g. the held-out greedy ``test/accuracy``.
        progress: live progress reporting.
        stop: set on Ctrl-C.
        resume: continue from the last resumable record of ``run_store``.
        reference: KL reference policy; when ``kl_penalty_coef > 0`` and none is given,
            the initial weights are saved once and reused after a resume.
        rewarder: rewards each batch's rollouts (a reward over prompt rows); ``None``
            when the environments reward their own steps.
    """
    extra: dict[str, Any] = {}
    holder: list[SamplingClient | None] = [reference]

    def on_resume(record: CheckpointRecord) -> None:
        path = record.extra.get(REFERENCE_KEY)
        if holder[0] is None and isinstance(path, str):
            holder[0] = training.create_sampling_client(path)
            extra[REFERENCE_KEY] = path

    shaper: Shaper | None = None
    if config.kl_penalty_coef > 0:
        if resume:
            record = CheckpointLog(run_store).last_resumable()
            if record is not None:
                on_resume(record)
        if holder[0] is None:
            path = training.save_weights_for_sampler("kl-reference").result()
            holder[0] = training.create_sampling_client(path)
            extra[REFERENCE_KEY] = path

        def penalise(items: list[PolicyDatum]) -> tuple[list[PolicyDatum], dict[str, float]]:
            ref = holder[0]
            assert ref is not None
            new, avg = apply_kl_penalty(
                items, reference_logprobs(items, ref), config.kl_penalty_coef
            )
            return new, {"kl_policy_base": avg}

        shaper = penalise
    settings = PolicyLoopSettings(
        description="rl",
        learning_rate=config.learning_rate,
        adam=config.adam(),
        max_steps=config.max_steps,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        loss_fn=validate_loss_fn(config.loss_fn),
        loss_fn_config=config.loss_fn_config,
        normalize_advantages=config.normalize_advantages,
        save_every=config.save_every,
        seed=config.seed,
    )
    return run_policy_loop(
        settings,
        training=training,
        dataset=dataset,
        metrics=metrics,
        run_store=run_store,
        shaper=shaper,
        rewarder=rewarder,
        evaluators=evaluators,
        progress=progress,
        stop=stop,
        resume=resume,
        record_extra=extra,
    )
