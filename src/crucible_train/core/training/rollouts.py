"""Rollouts and what the policy loops make of them: advantages, datums, KL penalty, metrics.

Core layer, shared by :mod:`crucible_train.core.training.rl` and
:mod:`crucible_train.core.training.distill`. :func:`rollout_groups` plays every group of
environments (one ``sample`` call per distinct observation, seeds derived from
``(seed, group, turn, k)`` by :func:`derive_seed`); :func:`compute_advantages` centres each
group's total rewards on their mean; :func:`groups_to_datums` turns trajectories into
shifted datums (observations that extend the sequence so far are merged into one datum;
action tokens carry the advantage, everything else advantage 0); :func:`apply_kl_penalty`
moves advantages against a reference policy's log-probs (:func:`reference_logprobs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.core.training.envs import (
    Env,
    EnvGroupBuilder,
    StopSequences,
    Trajectory,
    TrajectoryGroup,
    Transition,
)
from crucible_train.ports.sampling import SamplingClient
from crucible_train.types import (
    Datum,
    ModelInput,
    SampleResponse,
    SamplingParams,
    TensorData,
)

__all__ = [
    "PolicyDatum",
    "apply_kl_penalty",
    "completion_metrics",
    "compute_advantages",
    "derive_seed",
    "groups_to_datums",
    "policy_metrics",
    "reference_logprobs",
    "rollout_groups",
    "trajectory_metrics",
    "trajectory_to_datums",
]


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
        "reward/std": float(np.std(rewards)),
        "frac_groups_zero_std": 1.0 - mixed / len(groups),
        "env/episodes": float(len(rewards)),
        "env/turns_per_episode": turns / len(rewards),
        "env/ac_tokens_per_turn": ac_tokens / turns if turns else 0.0,
        "env/frac_mixed_groups": mixed / len(groups),
    }
    for key, value_sum in sums.items():
        out[f"env/{key}"] = value_sum / counts[key]
    return out


def completion_metrics(groups: Sequence[TrajectoryGroup]) -> dict[str, float]:
    """What was sampled, over every action of a batch (before any is left out).

    ``completion/tokens_mean`` and ``completion/tokens_max`` (tokens per action),
    ``completion/truncated`` (share of actions that hit ``max_tokens``: stop reason
    ``"length"``) and ``completion/tokens_sum`` (the total, for the loop's tokens/s).
    """
    actions = [t.action for g in groups for tr in g.trajectories for t in tr.transitions]
    if not actions:
        return {}
    lengths = [len(a.tokens) for a in actions]
    return {
        "completion/tokens_mean": sum(lengths) / len(lengths),
        "completion/tokens_max": float(max(lengths)),
        "completion/truncated": sum(a.stop_reason == "length" for a in actions) / len(actions),
        "completion/tokens_sum": float(sum(lengths)),
    }
