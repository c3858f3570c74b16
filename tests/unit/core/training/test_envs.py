"""The task-free environments of core: a prompt-only env and a group of fresh envs."""

from __future__ import annotations

from crucible_train.core.training.envs import Env, EnvGroupBuilder, GroupOf, PromptOnlyEnv
from crucible_train.types import ModelInput, TokensWithLogprobs


def _action() -> TokensWithLogprobs:
    return TokensWithLogprobs(tokens=[5, 0], logprobs=[-0.1, -0.2], stop_reason="stop")


def test_prompt_only_env_gives_no_reward() -> None:
    prompt = ModelInput.from_ints([1, 2, 3])
    env = PromptOnlyEnv(prompt, [0])
    assert isinstance(env, Env)
    assert env.initial_observation() == (prompt, [0])
    result = env.step(_action())
    assert result.reward == 0.0
    assert result.episode_done


def test_group_of_makes_fresh_envs_and_adds_no_group_reward() -> None:
    made: list[PromptOnlyEnv] = []

    def make() -> Env:
        made.append(PromptOnlyEnv(ModelInput.from_ints([1]), [0]))
        return made[-1]

    group = GroupOf(make, 3)
    assert isinstance(group, EnvGroupBuilder)
    first, second = group.make_envs(), group.make_envs()
    assert len(first) == len(second) == 3
    assert len({id(env) for env in [*first, *second]}) == 6
    assert group.compute_group_rewards([]) == []
