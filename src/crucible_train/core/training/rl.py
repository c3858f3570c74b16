"""Reinforcement learning on sampled rollouts: advantages, datums, the loop.

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
from concurrent.futures import Future
from typing import Any, TypeAlias

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.core.evaluation.evaluators import EvaluatorRunner
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.core.training.envs import (
    Env,
    EnvGroupBuilder,
    RLDataset,
    StopSequences,
    Trajectory,
    TrajectoryGroup,
    Transition,
)
from crucible_train.core.training.job import LoopResult, close_loop
from crucible_train.core.training.progress import NullProgress, Progress
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
from crucible_train.types import (
    LOSS_FN_NAMES,
    AdamParams,
    Datum,
    LossFnName,
    ModelInput,
    SampleResponse,
    SamplingParams,
    TensorData,
)

__all__ = [
    "POLICY_LOSSES",
    "REFERENCE_KEY",
    "PolicyDatum",
    "PolicyLoopSettings",
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


# --- rollouts -----------------------------------------------------------------------------


def derive_seed(*parts: int) -> int:
    """A 31-bit sampling seed from integers such as ``(seed, iteration, group, turn)``."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0]
    ) & (2**31 - 1)


@attrs.define
class _Live:
    env: Env
    observation: ModelInput
    stop: StopSequences
    transitions: list[Transition] = attrs.field(factory=list)
    done: bool = False


def rollout_groups(
    builders: Sequence[EnvGroupBuilder],
    sampler: SamplingClient,
    *,
    max_tokens: int,
    temperature: float,
    seed: int,
    max_turns: int = 16,
) -> list[TrajectoryGroup]:
    """Roll out every group until each episode is done (or ``max_turns`` actions).

    Per turn, the live environments of a group that share an observation and stop
    sequences are sampled with ONE call (``num_samples`` = their count); every call of the
    turn is submitted before any result is awaited. Seeds: ``derive_seed(seed, group,
    turn, k)`` for the ``k``-th distinct observation.
    """
    groups: list[list[_Live]] = []
    for builder in builders:
        live = []
        for env in builder.make_envs():
            observation, stop = env.initial_observation()
            live.append(_Live(env=env, observation=observation, stop=stop))
        groups.append(live)
    for turn in range(max_turns):
        calls: list[tuple[list[_Live], Future[SampleResponse]]] = []
        for g, live in enumerate(groups):
            keyed: dict[tuple[tuple[Any, ...], tuple[Any, ...]], list[_Live]] = {}
            for item in live:
                if not item.done:
                    key = (tuple(item.observation.to_ints()), tuple(item.stop))
                    keyed.setdefault(key, []).append(item)
            for k, members in enumerate(keyed.values()):
                params = SamplingParams(
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=members[0].stop,
                    seed=derive_seed(seed, g, turn, k),
                )
                future = sampler.sample(members[0].observation, len(members), params)
                calls.append((members, future))
        if not calls:
            break
        for members, future in calls:
            sequences = future.result().sequences
            for item, action in zip(members, sequences, strict=True):
                result = item.env.step(action)
                item.transitions.append(
                    Transition(
                        observation=item.observation,
                        action=action,
                        reward=float(result.reward),
                        episode_done=result.episode_done,
                        metrics=dict(result.metrics),
                    )
                )
                if result.episode_done or result.next_observation is None:
                    item.done = True
                else:
                    item.observation = result.next_observation
                    if result.next_stop:
                        item.stop = result.next_stop
    out: list[TrajectoryGroup] = []
    for builder, live in zip(builders, groups, strict=True):
        trajectories = tuple(Trajectory(transitions=tuple(i.transitions)) for i in live)
        finals = builder.compute_group_rewards(trajectories)
        out.append(
            TrajectoryGroup(
                trajectories=trajectories,
                final_rewards=tuple(float(r) for r, _ in finals),
                metrics=tuple(dict(m) for _, m in finals),
            )
        )
    return out


# --- advantages and datums ----------------------------------------------------------------


def compute_advantages(
    groups: Sequence[TrajectoryGroup], *, normalize: bool = False
) -> list[npt.NDArray[np.float64]]:
    """Per group: ``A_i = R_i - mean(R)``; with ``normalize``, also divided by ``std(R)``.

    A group whose rewards are all equal gets zero advantages (no signal, no division).
    """
    out: list[npt.NDArray[np.float64]] = []
    for group in groups:
        rewards = np.asarray(group.total_rewards(), dtype=np.float64)
        if not rewards.size or float(np.ptp(rewards)) == 0.0:
            # Exactly zero (the mean of equal floats need not equal them).
            out.append(np.zeros_like(rewards))
            continue
        advantages = rewards - rewards.mean()
        if normalize:
            advantages = advantages / float(rewards.std())
        out.append(advantages)
    return out


@attrs.frozen(kw_only=True)
class PolicyDatum:
    """A training datum plus what the loop needs beside it.

    Attributes:
        datum: ``model_input`` and ``loss_fn_inputs`` ``target_tokens``, ``logprobs``
            (sampler log-probs), ``advantages`` (0 off the action tokens).
        mask: 1.0 where the target is a sampled action token, aligned with the targets.
        group: index of the trajectory's group in the batch.
    """

    datum: Datum
    mask: npt.NDArray[np.float32] = attrs.field(eq=False)
    group: int = 0

    def with_advantages(self, advantages: npt.NDArray[np.float32]) -> PolicyDatum:
        """The same datum with other advantages."""
        inputs = dict(self.datum.loss_fn_inputs)
        inputs["advantages"] = TensorData.from_numpy(advantages.astype(np.float32))
        datum = Datum(model_input=self.datum.model_input, loss_fn_inputs=inputs)
        return PolicyDatum(datum=datum, mask=self.mask, group=self.group)

    def array(self, key: str) -> npt.NDArray[np.float32]:
        """A float ``loss_fn_inputs`` entry as float32 numpy."""
        values: npt.NDArray[np.float32] = (
            self.datum.loss_fn_inputs[key].to_numpy().astype(np.float32)
        )
        return values


def _make_datum(
    tokens: list[int], logprobs: list[float], advantages: list[float], mask: list[float], group: int
) -> PolicyDatum:
    return PolicyDatum(
        datum=Datum(
            model_input=ModelInput.from_ints(tokens[:-1]),
            loss_fn_inputs={
                "target_tokens": TensorData.from_numpy(np.asarray(tokens[1:], dtype=np.int64)),
                "logprobs": TensorData.from_numpy(np.asarray(logprobs[1:], dtype=np.float32)),
                "advantages": TensorData.from_numpy(np.asarray(advantages[1:], dtype=np.float32)),
            },
        ),
        mask=np.asarray(mask[1:], dtype=np.float32),
        group=group,
    )


def trajectory_to_datums(
    trajectory: Trajectory, advantage: float, *, group: int = 0
) -> list[PolicyDatum]:
    """Shifted datums of one trajectory; action tokens carry ``advantage``.

    Observations that extend the sequence so far (observation + actions) are merged: only
    their new tokens are appended. Any other observation starts a new datum.
    """
    out: list[PolicyDatum] = []
    tokens: list[int] = []
    logprobs: list[float] = []
    advantages: list[float] = []
    mask: list[float] = []

    def flush() -> None:
        if len(tokens) > 1:
            out.append(_make_datum(tokens, logprobs, advantages, mask, group))
        tokens.clear()
        logprobs.clear()
        advantages.clear()
        mask.clear()

    for transition in trajectory.transitions:
        observation = transition.observation.to_ints()
        if tokens and observation[: len(tokens)] == tokens:
            delta = observation[len(tokens) :]
        else:
            flush()
            delta = observation
        action = transition.action
        tokens.extend(delta)
        logprobs.extend([0.0] * len(delta))
        advantages.extend([0.0] * len(delta))
        mask.extend([0.0] * len(delta))
        tokens.extend(action.tokens)
        logprobs.extend(action.require_logprobs())
        advantages.extend([float(advantage)] * len(action.tokens))
        mask.extend([1.0] * len(action.tokens))
    flush()
    return out


def groups_to_datums(
    groups: Sequence[TrajectoryGroup], advantages: Sequence[npt.NDArray[np.float64]]
) -> list[PolicyDatum]:
    """Datums of every trajectory of every group, in order."""
    out: list[PolicyDatum] = []
    for g, (group, group_advantages) in enumerate(zip(groups, advantages, strict=True)):
        for trajectory, advantage in zip(group.trajectories, group_advantages, strict=True):
            out.extend(trajectory_to_datums(trajectory, float(advantage), group=g))
    return out


def _full_sequence(item: PolicyDatum) -> ModelInput:
    targets = item.datum.loss_fn_inputs["target_tokens"].to_numpy()
    return item.datum.model_input.append_int(int(targets[-1]))


def reference_logprobs(
    items: Sequence[PolicyDatum], reference: SamplingClient
) -> list[npt.NDArray[np.float32]]:
    """Log-probs of every target under ``reference`` (aligned with the targets)."""
    futures = [reference.compute_logprobs(_full_sequence(item)) for item in items]
    out = []
    for future in futures:
        values = future.result()[1:]
        out.append(np.asarray([0.0 if v is None else v for v in values], dtype=np.float32))
    return out


def apply_kl_penalty(
    items: Sequence[PolicyDatum],
    reference_lps: Sequence[npt.NDArray[np.float32]],
    coef: float,
) -> tuple[list[PolicyDatum], float]:
    """Add ``coef * mask * (avg - d_t)`` to the advantages, ``d_t = (log q - log p_ref) * mask``.

    ``avg = sum(d) / sum(mask)`` over the batch, so the penalty is centred and only moves
    probability between tokens. Returns the new datums and ``avg`` (``kl_policy_base``).
    """
    diffs = [
        (item.array("logprobs") - ref) * item.mask
        for item, ref in zip(items, reference_lps, strict=True)
    ]
    total_mask = float(sum(item.mask.sum() for item in items))
    avg = float(sum(d.sum() for d in diffs)) / total_mask if total_mask else 0.0
    out = [
        item.with_advantages(item.array("advantages") + coef * item.mask * (avg - d))
        for item, d in zip(items, diffs, strict=True)
    ]
    return out, avg


def policy_metrics(
    items: Sequence[PolicyDatum], train_logprobs: Sequence[npt.NDArray[np.float32]]
) -> dict[str, float]:
    """``kl_sample_train_v1/v2`` and ``entropy`` over the action tokens.

    ``v1 = mean(lp_sample - lp_train)``, ``v2 = mean((lp_sample - lp_train)^2) / 2``,
    ``entropy = -mean(lp_sample)`` (a sample estimate of the sampler's entropy).
    """
    diffs: list[npt.NDArray[np.float64]] = []
    sampled: list[npt.NDArray[np.float64]] = []
    for item, train in zip(items, train_logprobs, strict=True):
        keep = item.mask > 0
        lp = item.array("logprobs").astype(np.float64)[keep]
        diffs.append(lp - np.asarray(train, dtype=np.float64)[: keep.size][keep])
        sampled.append(lp)
    if not diffs or sum(d.size for d in diffs) == 0:
        return {}
    d = np.concatenate(diffs)
    s = np.concatenate(sampled)
    return {
        "kl_sample_train_v1": float(d.mean()),
        "kl_sample_train_v2": float(0.5 * (d**2).mean()),
        "entropy": float(-s.mean()),
    }


def trajectory_metrics(groups: Sequence[TrajectoryGroup]) -> dict[str, float]:
    """``reward/mean`` and friends over a batch of groups."""
    rewards = [r for g in groups for r in g.total_rewards()]
    if not rewards:
        return {}
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    turns = ac_tokens = 0
    mixed = 0
    for group in groups:
        total = group.total_rewards()
        mixed += int(len(set(total)) > 1)
        for trajectory, extra in zip(group.trajectories, group.metrics, strict=True):
            for transition in trajectory.transitions:
                turns += 1
                ac_tokens += len(transition.action.tokens)
                for key, value in transition.metrics.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                    counts[key] = counts.get(key, 0) + 1
            for key, value in extra.items():
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
    out = {
        "reward/mean": float(np.mean(rewards)),
        "env/episodes": float(len(rewards)),
        "env/turns_per_episode": turns / len(rewards),
        "env/ac_tokens_per_turn": ac_tokens / turns if turns else 0.0,
        "env/frac_mixed_groups": mixed / len(groups),
    }
    for key, value_sum in sums.items():
        out[f"env/{key}"] = value_sum / counts[key]
    return out


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
            last.update(
                evaluators.maybe_run(step, training_client=training, sampling_client=sampler)
            )
        groups = rollout_groups(
            dataset.get_batch(step),
            sampler,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            seed=derive_seed(settings.seed, step),
        )
        sampled = time.perf_counter()
        advantages = compute_advantages(groups, normalize=settings.normalize_advantages)
        items = groups_to_datums(groups, advantages)
        step_metrics = trajectory_metrics(groups)
        if shaper is not None:
            items, shaped = shaper(items)
            step_metrics.update(shaped)
        fb = training.forward_backward(
            [i.datum for i in items], settings.loss_fn, settings.loss_fn_config
        )
        optim = training.optim_step(settings.adam)
        out = fb.result()
        optim_out = optim.result()
        train_lps = [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]
        step_metrics.update(policy_metrics(items, train_lps))
        now = time.perf_counter()
        step_metrics.update(
            {
                "lr": settings.learning_rate,
                "progress": (step + 1) / total,
                "num_datums": float(len(items)),
                "num_action_tokens": float(sum(i.mask.sum() for i in items)),
                "time/sample_s": sampled - began,
                "time/step_s": now - began,
            }
        )
        for key, value in optim_out.metrics.items():
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
        evaluators=evaluators,
        progress=progress,
        stop=stop,
        resume=resume,
        record_extra=extra,
    )
