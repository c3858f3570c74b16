"""The batch rewarder: what the sampled answers of one RL iteration are worth.

Core layer. After :func:`~crucible_train.core.training.rollouts.rollout_groups` has played
the prompt-only environments of a batch of
:class:`~crucible_train.core.training.prompt_rows.PromptGroup` s, :class:`BatchRewarder`
scores every trajectory of the iteration with ONE
:meth:`~crucible_train.core.rewards.CombinedReward.score_batch` call. Each
:class:`~crucible_train.core.rewards.RewardInput` carries the row's prompt messages and
extra columns, the renderer's parse of the SAMPLED tokens (message, text, ``parse_ok``),
the sampled token ids themselves and the stop reason. The totals become the groups' final
rewards; a trajectory whose total is None (a component gave None or failed) is left out of
its group, and a group left empty is dropped. Datums are still built from the sampled ids:
the text is only for the reward.

:func:`check_reward_specs` builds the specs once with stand-in clients, so a bad name,
option or Python path is a configuration error before any model is built;
:func:`reward_clients` says which ports (``llm``, ``embedding``) the specs need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from crucible_train.core.evaluation.reward_evaluator import completion_input
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.rewards import (
    CombinedReward,
    RewardInput,
    RewardSpec,
    build_rewards,
    reward_metrics,
)
from crucible_train.core.training.envs import EnvGroupBuilder, Trajectory, TrajectoryGroup
from crucible_train.core.training.prompt_rows import PromptGroup
from crucible_train.errors import ConfigurationError, PortError

__all__ = [
    "BatchRewarder",
    "RewardSpecs",
    "check_reward_specs",
    "reward_clients",
    "reward_input",
]

RewardSpecs = RewardSpec | Sequence[RewardSpec]
"""One reward spec or a list of them (see :func:`~crucible_train.core.rewards.build_rewards`)."""

_CLIENT_OF: Mapping[str, Literal["llm", "embedding"]] = {
    "judge": "llm",
    "semantic_similarity": "embedding",
}


def _listed(specs: RewardSpecs) -> list[RewardSpec]:
    return [specs] if isinstance(specs, str | Mapping) else list(specs)


def reward_clients(specs: RewardSpecs | None) -> frozenset[Literal["llm", "embedding"]]:
    """The client ports the rewards of ``specs`` need (``judge``: llm, ``semantic_similarity``:
    embedding); the CLI builds only those."""
    if specs is None:
        return frozenset()
    names = [s if isinstance(s, str) else s.get("name") for s in _listed(specs)]
    return frozenset(_CLIENT_OF[n] for n in names if isinstance(n, str) and n in _CLIENT_OF)


class _StandIn:
    """LLM and embedding client that is never called: lets a spec needing a port be
    checked before the port is built."""

    def _refuse(self, *_args: Any, **_kwargs: Any) -> Any:
        # A port error, not a ConfigurationError: a scorer's option probe must not take
        # the missing client for a bad option.
        raise PortError("no client yet: the reward specs are only being checked")

    chat = complete = embed_texts = _refuse

    @property
    def dimension(self) -> int:
        """Refused."""
        return int(self._refuse())


def check_reward_specs(specs: RewardSpecs, max_failure_rate: float = 0.1) -> None:
    """Build ``specs`` once (stand-in clients), so that every error shows at validation.

    Raises:
        ConfigurationError: an unknown reward name (valid ones listed), an option the
            reward or scorer does not take, a Python path that does not import or is not
            callable, duplicate labels, a bad ``max_failure_rate``.
    """
    stand_in: Any = _StandIn()
    build_rewards(specs, max_failure_rate=max_failure_rate, llm=stand_in, embedding=stand_in)


def reward_input(group: PromptGroup, trajectory: Trajectory, renderer: Renderer) -> RewardInput:
    """The reward's view of a single-turn trajectory of ``group``: its last action, parsed."""
    if not trajectory.transitions:
        raise ConfigurationError("a trajectory without an action cannot be rewarded")
    return completion_input(group.row, trajectory.transitions[-1].action, renderer)


@attrs.frozen(kw_only=True)
class BatchRewarder:
    """Scores an iteration's prompt-row groups in one batch (see the module docstring).

    Args:
        reward: the run's combined reward (built once, up front).
        renderer: parses the sampled tokens into the assistant message.
    """

    reward: CombinedReward
    renderer: Renderer

    def __call__(
        self, builders: Sequence[EnvGroupBuilder], groups: Sequence[TrajectoryGroup]
    ) -> tuple[list[TrajectoryGroup], dict[str, float]]:
        """The groups with their rewards (unrewardable trajectories left out) and metrics:
        ``reward/<label>/mean``, ``reward/<label>/failures``, ``reward/total/none`` (rows
        left out) and ``completion/parse_ok``.

        Raises:
            ConfigurationError: a group is not a :class:`PromptGroup`.
            RewardError: a component failed on more than its allowed share of the rows.
        """
        samples: list[RewardInput] = []
        for builder, group in zip(builders, groups, strict=True):
            if not isinstance(builder, PromptGroup):
                raise ConfigurationError(
                    f"the batch rewarder scores prompt-row groups, got {type(builder).__name__}; "
                    "an environment that rewards its own steps needs no rewarder"
                )
            samples.extend(reward_input(builder, t, self.renderer) for t in group.trajectories)
        batch = self.reward.score_batch(samples)
        out: list[TrajectoryGroup] = []
        at = 0
        for group in groups:
            kept: list[tuple[Trajectory, float, Mapping[str, float]]] = []
            for trajectory, final, extra in zip(
                group.trajectories, group.final_rewards, group.metrics, strict=True
            ):
                total = batch.totals[at]
                at += 1
                if total is not None:
                    kept.append((trajectory, final + total, extra))
            if kept:
                out.append(
                    TrajectoryGroup(
                        trajectories=tuple(t for t, _, _ in kept),
                        final_rewards=tuple(r for _, r, _ in kept),
                        metrics=tuple(m for _, _, m in kept),
                    )
                )
        metrics = reward_metrics(batch)
        # reward/mean (over the trajectories trained on) is the loop's; no second copy.
        metrics.pop("reward/total/mean", None)
        if samples:
            metrics["completion/parse_ok"] = sum(s.parse_ok for s in samples) / len(samples)
        return out, metrics
