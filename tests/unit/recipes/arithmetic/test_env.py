"""The built-in arithmetic environment: prompts, exact-match and format rewards, batches."""

from __future__ import annotations

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.envs import PromptOnlyEnv
from crucible_train.errors import ConfigurationError
from crucible_train.recipes.arithmetic.env import ArithmeticEnv, ArithmeticRLDataset
from crucible_train.recipes.arithmetic.task import ArithmeticProblem, ArithmeticTask
from crucible_train.types import TokensWithLogprobs


@pytest.fixture
def renderer() -> Renderer:
    tokenizer = ByteLevelTokenizer(
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"],
        vocab_size=512,
    )
    return get_renderer("qwen3_instruct", tokenizer)


def _answer(renderer: Renderer, text: str, stop: bool = True) -> TokensWithLogprobs:
    tokens = renderer.tokenizer.encode(text, allow_special=False)
    if stop:
        tokens = [*tokens, *renderer.get_stop_sequences()]  # type: ignore[list-item]
    return TokensWithLogprobs(
        tokens=tokens, logprobs=[-0.1] * len(tokens), stop_reason="stop" if stop else "length"
    )


def test_prompt_is_the_generation_prompt(renderer: Renderer) -> None:
    problem = ArithmeticProblem(a=3, b=4, op="+")
    prompt, stop = ArithmeticEnv(problem, renderer, 0.1).initial_observation()
    assert prompt == renderer.build_generation_prompt(problem.prompt())
    assert list(stop) == list(renderer.get_stop_sequences())


@pytest.mark.parametrize(
    ("text", "stop", "reward", "correct", "fmt"),
    [("7", True, 1.0, 1.0, 1.0), ("8", True, 0.0, 0.0, 1.0), ("7", False, -0.1, 0.0, 0.0)],
)
def test_reward_is_exact_match_plus_format(
    renderer: Renderer, text: str, stop: bool, reward: float, correct: float, fmt: float
) -> None:
    env = ArithmeticEnv(ArithmeticProblem(a=3, b=4, op="+"), renderer, 0.1)
    result = env.step(_answer(renderer, text, stop))
    assert result.episode_done
    assert result.reward == pytest.approx(reward)
    assert result.metrics == {"correct": correct, "format": fmt}


def test_prompt_only_batches_are_reward_free_envs_of_the_problem_prompts(
    renderer: Renderer,
) -> None:
    task = ArithmeticTask(max_operand=3)
    dataset = ArithmeticRLDataset(
        task=task, renderer=renderer, groups_per_batch=2, group_size=2, prompt_only=True
    )
    problem = task.problems("train")[0]
    env = dataset.get_batch(0)[0].make_envs()[0]
    assert isinstance(env, PromptOnlyEnv)
    prompt, stop = env.initial_observation()
    assert prompt == renderer.build_generation_prompt(problem.prompt())
    assert list(stop) == list(renderer.get_stop_sequences())
    assert env.step(_answer(renderer, problem.answer)).reward == 0.0


def test_dataset_batches_groups_and_cycles(renderer: Renderer) -> None:
    task = ArithmeticTask(max_operand=3)
    n = len(task.problems("train"))
    one_pass = ArithmeticRLDataset(task=task, renderer=renderer, groups_per_batch=4, group_size=3)
    assert len(one_pass) == n // 4
    (builder, *_rest) = one_pass.get_batch(0)
    envs = builder.make_envs()
    assert len(envs) == 3
    assert len({id(e) for e in envs}) == 3  # fresh, single-use environments
    cycled = ArithmeticRLDataset(
        task=task, renderer=renderer, groups_per_batch=4, group_size=3, num_batches=50
    )
    assert len(cycled) == 50
    assert len(cycled.get_batch(49)) == 4
    with pytest.raises(ConfigurationError, match="groups_per_batch"):
        ArithmeticRLDataset(task=task, renderer=renderer, groups_per_batch=10_000, group_size=1)
