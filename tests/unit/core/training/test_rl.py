"""RL core: advantages, datums, multi-turn merge, KL penalty, rollouts and the loop (fakes)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from crucible_train.core.training.envs import (
    EnvGroupBuilder,
    StepResult,
    StopSequences,
    Trajectory,
    TrajectoryGroup,
    Transition,
)
from crucible_train.core.training.rl import (
    PolicyDatum,
    RlLoopConfig,
    apply_kl_penalty,
    compute_advantages,
    derive_seed,
    policy_metrics,
    rollout_groups,
    run_rl,
    trajectory_to_datums,
    validate_loss_fn,
)
from crucible_train.errors import ConfigurationError
from crucible_train.types import (
    Datum,
    ModelInput,
    TokensWithLogprobs,
)

from fakes import (
    FakeMetricsSink,
    FakeRunStore,
    FakeSamplingClient,
    FakeTrainingClient,
    FakeTrainingState,
)

# --- environments -----------------------------------------------------------------------


class OneShotEnv:
    """Prompt ``prompt``; reward = number of tokens equal to 5 in the answer."""

    def __init__(self, prompt: list[int]) -> None:
        self.prompt = prompt

    def initial_observation(self) -> tuple[ModelInput, StopSequences]:
        return ModelInput.from_ints(self.prompt), [0]

    def step(self, action: TokensWithLogprobs) -> StepResult:
        return StepResult(reward=float(action.tokens.count(5)), episode_done=True)


class TwoTurnEnv:
    """Two actions; the second observation extends the first sequence (or not, if ``fresh``)."""

    def __init__(self, fresh: bool = False) -> None:
        self.fresh = fresh
        self.turn = 0

    def initial_observation(self) -> tuple[ModelInput, StopSequences]:
        return ModelInput.from_ints([100, 101]), [0]

    def step(self, action: TokensWithLogprobs) -> StepResult:
        self.turn += 1
        if self.turn == 2:
            return StepResult(reward=1.0, episode_done=True)
        base = [] if self.fresh else [100, 101, *action.tokens]
        return StepResult(
            reward=0.5, episode_done=False, next_observation=ModelInput.from_ints([*base, 102])
        )


class Builder(EnvGroupBuilder):
    def __init__(self, envs: Sequence[Any]) -> None:
        self.envs = envs

    def make_envs(self) -> Sequence[Any]:
        return list(self.envs)


class Dataset:
    def __init__(self, batches: int, groups: int = 2, size: int = 4) -> None:
        self.batches, self.groups, self.size = batches, groups, size

    def __len__(self) -> int:
        return self.batches

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        return [
            Builder([OneShotEnv([50 + index, g]) for _ in range(self.size)])
            for g in range(self.groups)
        ]


def _transition(ob: list[int], ac: list[int], lps: list[float], reward: float = 0.0) -> Transition:
    return Transition(
        observation=ModelInput.from_ints(ob),
        action=TokensWithLogprobs(tokens=ac, logprobs=lps, stop_reason="stop"),
        reward=reward,
        episode_done=True,
    )


def _group(rewards: list[float]) -> TrajectoryGroup:
    trajectories = tuple(
        Trajectory(transitions=(_transition([1], [2], [-0.1], r),)) for r in rewards
    )
    return TrajectoryGroup(
        trajectories=trajectories,
        final_rewards=tuple(0.0 for _ in rewards),
        metrics=tuple({} for _ in rewards),
    )


def _array(datum: Datum, key: str) -> list[float]:
    return [float(x) for x in datum.loss_fn_inputs[key].to_numpy()]


# --- advantages -------------------------------------------------------------------------


def test_advantages_are_centred_per_group() -> None:
    a, b = compute_advantages([_group([1.0, 0.0, 0.0, 1.0]), _group([3.0, 1.0])])
    assert a.tolist() == [0.5, -0.5, -0.5, 0.5]
    assert b.tolist() == [1.0, -1.0]


def test_std_normalisation_is_optional() -> None:
    (plain,) = compute_advantages([_group([2.0, 0.0, 0.0, 0.0])])
    (scaled,) = compute_advantages([_group([2.0, 0.0, 0.0, 0.0])], normalize=True)
    assert plain.tolist() == [1.5, -0.5, -0.5, -0.5]
    np.testing.assert_allclose(scaled, plain / np.std([2.0, 0.0, 0.0, 0.0]))
    assert np.std(scaled) == pytest.approx(1.0)


@pytest.mark.parametrize("normalize", [False, True])
def test_constant_groups_get_zero_advantages(normalize: bool) -> None:
    (advantages,) = compute_advantages([_group([0.7, 0.7, 0.7])], normalize=normalize)
    assert advantages.tolist() == [0.0, 0.0, 0.0]


def test_group_rewards_are_added_to_step_rewards() -> None:
    group = _group([1.0, 0.0])
    group = TrajectoryGroup(
        trajectories=group.trajectories, final_rewards=(0.0, 2.0), metrics=({}, {})
    )
    assert group.total_rewards() == [1.0, 2.0]


# --- datums -----------------------------------------------------------------------------


def test_single_turn_datum_is_shifted_and_aligned() -> None:
    trajectory = Trajectory(transitions=(_transition([10, 11, 12], [20, 21], [-0.2, -0.3]),))
    (item,) = trajectory_to_datums(trajectory, 0.5)
    datum = item.datum
    assert datum.model_input.to_ints() == [10, 11, 12, 20]
    assert _array(datum, "target_tokens") == [11, 12, 20, 21]
    assert _array(datum, "logprobs") == pytest.approx([0.0, 0.0, -0.2, -0.3])
    assert _array(datum, "advantages") == [0.0, 0.0, 0.5, 0.5]
    assert item.mask.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert set(datum.loss_fn_inputs) == {"target_tokens", "logprobs", "advantages"}


def test_observation_extending_the_sequence_is_merged() -> None:
    first = _transition([10, 11], [20], [-0.2])
    second = _transition([10, 11, 20, 30, 31], [40, 41], [-0.4, -0.5])
    (item,) = trajectory_to_datums(Trajectory(transitions=(first, second)), 1.0)
    assert item.datum.model_input.to_ints() == [10, 11, 20, 30, 31, 40]
    assert _array(item.datum, "target_tokens") == [11, 20, 30, 31, 40, 41]
    assert _array(item.datum, "logprobs") == pytest.approx([0, -0.2, 0, 0, -0.4, -0.5])
    assert _array(item.datum, "advantages") == [0, 1, 0, 0, 1, 1]


def test_observation_not_extending_the_sequence_starts_a_new_datum() -> None:
    first = _transition([10, 11], [20], [-0.2])
    second = _transition([99, 98], [40], [-0.4])
    items = trajectory_to_datums(Trajectory(transitions=(first, second)), -1.0)
    assert [i.datum.model_input.to_ints() for i in items] == [[10, 11], [99, 98]]
    assert [_array(i.datum, "advantages") for i in items] == [[0.0, -1.0], [0.0, -1.0]]


def test_kl_penalty_math() -> None:
    trajectory = Trajectory(transitions=(_transition([1, 2], [3, 4], [-1.0, -2.0]),))
    (item,) = trajectory_to_datums(trajectory, 0.0)
    reference = [np.asarray([-9.0, -0.5, -1.0], dtype=np.float32)]  # targets 2, 3, 4
    (new,), avg = apply_kl_penalty([item], reference, coef=0.5)
    # d = (lp_sample - lp_ref) * mask = [0, -0.5, -1.0]; avg = -1.5 / 2
    assert avg == pytest.approx(-0.75)
    assert _array(new.datum, "advantages") == pytest.approx(
        [0.0, 0.5 * (-0.75 + 0.5), 0.5 * (-0.75 + 1.0)]
    )


def test_policy_metrics_use_action_tokens_only() -> None:
    trajectory = Trajectory(transitions=(_transition([1, 2], [3, 4], [-1.0, -2.0]),))
    (item,) = trajectory_to_datums(trajectory, 0.0)
    train = [np.asarray([-7.0, -1.5, -1.0], dtype=np.float32)]
    metrics = policy_metrics([item], train)
    assert metrics["kl_sample_train_v1"] == pytest.approx((0.5 - 1.0) / 2)
    assert metrics["kl_sample_train_v2"] == pytest.approx(0.5 * (0.25 + 1.0) / 2)
    assert metrics["entropy"] == pytest.approx(1.5)


# --- rollouts ---------------------------------------------------------------------------


def test_shared_prompt_group_is_sampled_with_one_call() -> None:
    sampler = FakeSamplingClient()
    groups = rollout_groups(
        Dataset(1, groups=2, size=4).get_batch(0), sampler, max_tokens=3, temperature=1, seed=7
    )
    assert [(p.to_ints(), n) for p, n, _ in sampler.calls] == [([50, 0], 4), ([50, 1], 4)]
    assert [len(g.trajectories) for g in groups] == [4, 4]


def test_distinct_prompts_are_sampled_separately() -> None:
    sampler = FakeSamplingClient()
    builder = Builder([OneShotEnv([1]), OneShotEnv([2]), OneShotEnv([1])])
    rollout_groups([builder], sampler, max_tokens=3, temperature=1, seed=0)
    assert sorted((p.to_ints(), n) for p, n, _ in sampler.calls) == [([1], 2), ([2], 1)]


def test_multi_turn_rollout_merges_into_one_datum() -> None:
    sampler = FakeSamplingClient()
    (group,) = rollout_groups(
        [Builder([TwoTurnEnv()])], sampler, max_tokens=3, temperature=1, seed=0
    )
    (trajectory,) = group.trajectories
    assert len(trajectory.transitions) == 2
    assert group.total_rewards() == [1.5]
    assert len(trajectory_to_datums(trajectory, 1.0)) == 1
    (fresh,) = rollout_groups(
        [Builder([TwoTurnEnv(fresh=True)])], sampler, max_tokens=3, temperature=1, seed=0
    )
    assert len(trajectory_to_datums(fresh.trajectories[0], 1.0)) == 2


def test_seeds_are_derived_and_distinct() -> None:
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert len({derive_seed(0, i) for i in range(100)}) == 100
    assert derive_seed(1, 0) != derive_seed(0, 1)


# --- config -----------------------------------------------------------------------------


def test_loss_names_are_validated() -> None:
    assert validate_loss_fn("ppo") == "ppo"
    with pytest.raises(ConfigurationError, match="importance_sampling"):
        RlLoopConfig(loss_fn="cross_entropy")
    with pytest.raises(ConfigurationError, match="loss_fn"):
        RlLoopConfig(loss_fn="reinforce")


@pytest.mark.parametrize(
    ("field", "value"),
    [("save_every", -1), ("learning_rate", 0.0), ("max_tokens", -1), ("kl_penalty_coef", -1.0)],
)
def test_bad_config_values_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RlLoopConfig(**{field: value})


# --- the loop ---------------------------------------------------------------------------


def _run(
    states: dict[str, FakeTrainingState],
    run: FakeRunStore,
    calls: list[Any],
    *,
    stop_after: int | None = None,
    resume: bool = False,
    **overrides: Any,
) -> tuple[FakeTrainingClient, FakeMetricsSink, Any]:
    """One invocation on the run ``run`` (its rows kept in ``run.metrics`` across calls,
    the training states in ``states``, every sampler call in ``calls``)."""
    client = FakeTrainingClient(states=states, sample_calls=calls)
    stop = threading.Event()

    def keep_and_maybe_stop(step: int | None, metrics: Mapping[str, Any]) -> None:
        run.metrics.log_metrics(metrics, step)
        if stop_after is not None and step is not None and step + 1 >= stop_after:
            stop.set()

    settings: dict[str, Any] = {"max_steps": 6, "save_every": 2}
    settings.update(overrides)
    recorder = FakeMetricsSink(on_metrics=keep_and_maybe_stop)
    result = run_rl(
        RlLoopConfig(**settings),
        training=client,
        dataset=Dataset(10),
        metrics=recorder,
        run_store=run,
        stop=stop,
        resume=resume,
    )
    return client, recorder, result


def _rows(run: FakeRunStore) -> list[dict[str, Any]]:
    return [
        {"step": step} | {k: v for k, v in row.items() if not k.startswith("time/")}
        for step, row in run.metrics.rows
    ]


def test_loop_records_checkpoints_naming_the_next_batch() -> None:
    run = FakeRunStore()
    client, recorder, result = _run({}, run, [])
    records = run.records
    assert [(r.name, r.step, r.batch) for r in records] == [
        ("000002", 2, 2),
        ("000004", 4, 4),
        ("final", 6, 6),
    ]
    assert records[-1].final
    assert records[-1].sampler_path
    assert result.steps_done == 6
    assert not result.interrupted
    assert [step for step, _ in recorder.rows] == list(range(6))
    assert {"reward/mean", "kl_sample_train_v1", "kl_sample_train_v2", "entropy", "lr"} <= set(
        recorder.rows[0][1]
    )
    assert all(loss == "importance_sampling" for loss, _, _ in client.batches)


def test_loss_fn_and_config_are_passed_through() -> None:
    client, _, _ = _run(
        {},
        FakeRunStore(),
        [],
        max_steps=1,
        loss_fn="ppo",
        loss_fn_config={"clip_low_threshold": 0.7, "clip_high_threshold": 1.3},
    )
    assert client.batches[0][:2] == ("ppo", {"clip_low_threshold": 0.7, "clip_high_threshold": 1.3})


def test_interrupted_and_resumed_run_reproduces_sampling_and_metrics() -> None:
    whole_calls: list[Any] = []
    whole = FakeRunStore()
    _run({}, whole, whole_calls)
    parts_calls: list[Any] = []
    parts_states: dict[str, FakeTrainingState] = {}
    parts = FakeRunStore()
    _, _, first = _run(parts_states, parts, parts_calls, stop_after=3)
    assert first.interrupted
    assert first.steps_done == 3
    assert parts.records[-1].name == "interrupted-000003"
    client, _, second = _run(parts_states, parts, parts_calls, resume=True)
    assert second.resumed_from == 3
    assert second.steps_done == 6
    assert client.steps == 6
    assert parts.rewinds == [3]
    assert parts_calls == whole_calls
    assert _rows(parts) == _rows(whole)


def test_kl_reference_is_the_initial_policy_and_kept_across_resume() -> None:
    run = FakeRunStore()
    states: dict[str, FakeTrainingState] = {}
    _, recorder, _ = _run(states, run, [], kl_penalty_coef=0.1, stop_after=2)
    assert "kl_policy_base" in recorder.rows[0][1]
    record = run.records[-1]
    assert record.extra["reference_sampler_path"] == "sampler://kl-reference/0"
    _run(states, run, [], kl_penalty_coef=0.1, resume=True)
    assert all(
        r.extra.get("reference_sampler_path") == "sampler://kl-reference/0" for r in run.records
    )


def test_empty_dataset_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no batches"):
        run_rl(
            RlLoopConfig(),
            training=FakeTrainingClient(),
            dataset=Dataset(0),
            metrics=FakeMetricsSink(),
            run_store=FakeRunStore(),
        )


def test_policy_datum_with_advantages_keeps_the_rest() -> None:
    trajectory = Trajectory(transitions=(_transition([1, 2], [3], [-1.0]),))
    (item,) = trajectory_to_datums(trajectory, 0.0)
    new = item.with_advantages(np.asarray([0.0, 2.0], dtype=np.float32))
    assert isinstance(new, PolicyDatum)
    assert _array(new.datum, "advantages") == [0.0, 2.0]
    assert _array(new.datum, "target_tokens") == _array(item.datum, "target_tokens")
