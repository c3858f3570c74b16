"""The RL environment contracts, and the generic environments that know no task.

Synchronous, single-use environments:

* :class:`Env` gives an initial observation (prompt tokens and stop sequences) and turns
  each sampled action into a :class:`StepResult` (reward, done, next observation);
* :class:`EnvGroupBuilder` makes the environments of one group (their rewards are compared
  with each other) and may add group-level rewards;
* :class:`RLDataset` gives batch ``i`` as a list of group builders.

A rollout records each episode as a :class:`Trajectory` of :class:`Transition` s, a group's
as a :class:`TrajectoryGroup`. :class:`PromptOnlyEnv` (a prompt whose answers are not
scored, distillation's environment) and :class:`GroupOf` (``size`` fresh copies of one
environment) serve any task.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

import attrs

from crucible_train.types import ModelInput, TokensWithLogprobs

__all__ = [
    "Env",
    "EnvGroupBuilder",
    "GroupOf",
    "PromptOnlyEnv",
    "RLDataset",
    "StepResult",
    "StopSequences",
    "Trajectory",
    "TrajectoryGroup",
    "Transition",
]

StopSequences: TypeAlias = Sequence[int] | Sequence[str]
"""Stop token ids or stop strings of one sampling call."""


@attrs.frozen(kw_only=True)
class StepResult:
    """What an environment returns for one action.

    Attributes:
        reward: reward of this step.
        episode_done: no further action is expected.
        next_observation: the next prompt (full sequence so far) when not done.
        next_stop: stop sequences for the next action (empty: keep the previous ones).
        metrics: per-step numbers averaged into ``env/<key>``.
    """

    reward: float
    episode_done: bool
    next_observation: ModelInput | None = None
    next_stop: StopSequences = ()
    metrics: Mapping[str, float] = attrs.field(factory=dict)


@runtime_checkable
class Env(Protocol):
    """One episode: observation → action → step result, until ``episode_done``. Single use."""

    def initial_observation(self) -> tuple[ModelInput, StopSequences]:
        """The first prompt and the stop sequences of the first action."""
        ...

    def step(self, action: TokensWithLogprobs) -> StepResult:
        """Score a sampled action (its tokens, stop sequence included)."""
        ...


class EnvGroupBuilder(abc.ABC):
    """Makes the environments of one group; their rewards are centred on each other."""

    @abc.abstractmethod
    def make_envs(self) -> Sequence[Env]:
        """Fresh environments, one per trajectory of the group."""
        raise NotImplementedError

    def compute_group_rewards(
        self, trajectories: Sequence[Trajectory]
    ) -> list[tuple[float, Mapping[str, float]]]:
        """A final reward (and metrics) per trajectory, added to its step rewards.

        The default adds nothing; override for rewards that compare trajectories.
        """
        return [(0.0, {}) for _ in trajectories]


@runtime_checkable
class RLDataset(Protocol):
    """Batches of group builders; batch ``i`` must be the same on every call (resume)."""

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """The groups of batch ``index``."""
        ...

    def __len__(self) -> int:
        """Number of batches."""
        ...


@attrs.frozen(kw_only=True)
class Transition:
    """One observation, the action sampled for it, and the step's result."""

    observation: ModelInput
    action: TokensWithLogprobs
    reward: float
    episode_done: bool
    metrics: Mapping[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Trajectory:
    """The transitions of one episode."""

    transitions: tuple[Transition, ...]

    @property
    def step_reward(self) -> float:
        """Sum of the step rewards."""
        return float(sum(t.reward for t in self.transitions))


@attrs.frozen(kw_only=True)
class TrajectoryGroup:
    """The trajectories of one group and their group-level rewards."""

    trajectories: tuple[Trajectory, ...]
    final_rewards: tuple[float, ...]
    metrics: tuple[Mapping[str, float], ...]

    def total_rewards(self) -> list[float]:
        """Step rewards plus the group-level reward, per trajectory."""
        return [
            t.step_reward + f for t, f in zip(self.trajectories, self.final_rewards, strict=True)
        ]


class PromptOnlyEnv:
    """A prompt whose answers are not scored (reward 0): distillation's environment."""

    def __init__(self, prompt: ModelInput, stop: StopSequences) -> None:
        self._prompt = prompt
        self._stop = stop

    def initial_observation(self) -> tuple[ModelInput, StopSequences]:
        """The prompt."""
        return self._prompt, self._stop

    def step(self, action: TokensWithLogprobs) -> StepResult:
        """Reward 0; the episode ends."""
        return StepResult(reward=0.0, episode_done=True)


class GroupOf(EnvGroupBuilder):
    """``size`` environments made by calling ``make`` (each a fresh single-use env)."""

    def __init__(self, make: Callable[[], Env], size: int) -> None:
        self._make = make
        self._size = size

    def make_envs(self) -> Sequence[Env]:
        """Fresh environments."""
        envs: list[Env] = [self._make() for _ in range(self._size)]
        return envs
