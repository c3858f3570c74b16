"""The built-in arithmetic task as prompt rows and reward specs: rows, batches, and the
reward equal, bit for bit, to the old environment's ``correct + format_coef * (format_ok - 1)``."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.rewards import build_rewards
from crucible_train.core.training.envs import (
    GroupOf,
    PromptOnlyEnv,
    StepResult,
    Trajectory,
    TrajectoryGroup,
    Transition,
)
from crucible_train.core.training.prompt_rows import PromptGroup, PromptRowDataset
from crucible_train.core.training.rewarding import BatchRewarder
from crucible_train.core.training.rl import RlLoopConfig, run_rl
from crucible_train.errors import ConfigurationError
from crucible_train.recipes.arithmetic.env import (
    arithmetic_reward_specs,
    arithmetic_rl_data,
)
from crucible_train.recipes.arithmetic.task import (
    ArithmeticProblem,
    ArithmeticTask,
    arithmetic_rows,
)
from crucible_train.types import TokensWithLogprobs

from fakes import FakeMetricsSink, FakeRunStore, FakeTrainingClient


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


def _old_env_reward(
    renderer: Renderer, problem: ArithmeticProblem, action: TokensWithLogprobs, coef: float
) -> float:
    """The reward of the retired ArithmeticEnv, as it was computed (the reference)."""
    message, ok = renderer.parse_response(list(action.tokens))
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    format_ok = ok and action.stop_reason != "length"
    correct = format_ok and ArithmeticTask.is_correct(problem, text)
    return float(correct) + coef * (float(format_ok) - 1.0)


def _data(renderer: Renderer, **kwargs: int) -> tuple[ArithmeticTask, PromptRowDataset]:
    settings = {"groups_per_batch": 4, "group_size": 3} | kwargs
    dataset, _ = arithmetic_rl_data(
        renderer, max_operand=9, seed=0, eval_problems=2, max_tokens=8, **settings
    )
    return ArithmeticTask(max_operand=9, seed=0), dataset


def test_rows_are_the_problem_prompts_with_their_answer() -> None:
    problem = ArithmeticProblem(a=3, b=4, op="+")
    (row,) = arithmetic_rows([problem])
    assert list(row.prompt) == problem.prompt()
    assert row.answer == "7"
    assert row.extras == {"answer": "7"}


def test_batches_are_prompt_only_groups_of_the_train_split_in_order_then_cycled(
    renderer: Renderer,
) -> None:
    task, dataset = _data(renderer)
    problems = task.problems("train")
    assert len(dataset) == len(problems) // 4
    batch = dataset.rows_of_batch(0)
    groups = dataset.get_batch(0)
    assert [r.answer for r in batch] == [p.answer for p in problems[:4]]
    envs = groups[0].make_envs()
    assert len({id(e) for e in envs}) == 3
    assert all(isinstance(e, PromptOnlyEnv) for e in envs)
    prompt, stop = envs[0].initial_observation()
    assert prompt == renderer.build_generation_prompt(problems[0].prompt())
    assert list(stop) == list(renderer.get_stop_sequences())
    _, cycled = _data(renderer, num_batches=50)
    n = len(problems)
    assert [r.answer for r in cycled.rows_of_batch(49)] == [
        problems[(49 * 4 + j) % n].answer for j in range(4)
    ]
    with pytest.raises(ConfigurationError, match="groups_per_batch"):
        _data(renderer, groups_per_batch=10_000)


TEXTS = ["7", " 7\n", "8", "07", "-7", "7.0", "", "seven", "7 apples"]


@pytest.mark.parametrize("coef", [0.1, 0.3])
def test_the_reward_specs_give_the_old_env_reward_bit_for_bit(
    renderer: Renderer, coef: float
) -> None:
    problem = ArithmeticProblem(a=3, b=4, op="+")
    (row,) = arithmetic_rows([problem])
    prompt = renderer.build_generation_prompt(row.prompt)
    group = PromptGroup(row, prompt, renderer.get_stop_sequences(), 2 * len(TEXTS))
    actions = [_answer(renderer, t, stop) for t in TEXTS for stop in (True, False)]
    trajectories = tuple(
        Trajectory(
            transitions=(Transition(observation=prompt, action=a, reward=0.0, episode_done=True),)
        )
        for a in actions
    )
    rolled = TrajectoryGroup(
        trajectories=trajectories,
        final_rewards=(0.0,) * len(actions),
        metrics=({},) * len(actions),
    )
    rewarder = BatchRewarder(reward=build_rewards(arithmetic_reward_specs(coef)), renderer=renderer)
    (scored,), metrics = rewarder([group], [rolled])
    expected = [_old_env_reward(renderer, problem, a, coef) for a in actions]
    assert scored.total_rewards() == expected  # exact, not approximately
    assert metrics["reward/correct/mean"] == 2 / len(actions)  # "7" and " 7\n", stopped
    assert metrics["reward/format_penalty/mean"] == -0.5  # every answer cut by the limit


class OldArithmeticEnv:
    """The retired environment: the reward computed in ``step`` (the reference path)."""

    def __init__(self, problem: ArithmeticProblem, renderer: Renderer) -> None:
        self.problem, self.renderer = problem, renderer

    def initial_observation(self) -> tuple[Any, Any]:
        prompt = self.renderer.build_generation_prompt(self.problem.prompt())
        return prompt, self.renderer.get_stop_sequences()

    def step(self, action: TokensWithLogprobs) -> StepResult:
        reward = _old_env_reward(self.renderer, self.problem, action, 0.1)
        return StepResult(reward=reward, episode_done=True)


class OldDataset:
    def __init__(self, problems: list[ArithmeticProblem], renderer: Renderer) -> None:
        self.problems, self.renderer = problems, renderer

    def __len__(self) -> int:
        return 4

    def get_batch(self, index: int) -> list[GroupOf]:
        n = len(self.problems)
        chosen = [self.problems[(index * 4 + j) % n] for j in range(4)]
        return [GroupOf(functools.partial(OldArithmeticEnv, p, self.renderer), 4) for p in chosen]


def test_the_loop_trains_on_the_same_datums_and_logs_the_same_rows_as_the_old_env(
    renderer: Renderer,
) -> None:
    theta = np.full(512, -8.0)
    stop = int(renderer.get_stop_sequences()[0])
    for token, logit in [(ord("7"), 1.0), (ord("1"), 1.0), (ord("0"), 0.5), (stop, 1.5)]:
        theta[token] = logit
    task = ArithmeticTask(max_operand=9, seed=0)
    new_data, _ = arithmetic_rl_data(
        renderer,
        max_operand=9,
        groups_per_batch=4,
        group_size=4,
        seed=0,
        eval_problems=2,
        max_tokens=4,
        num_batches=4,
    )
    runs = []
    for dataset, rewarder in [
        (OldDataset(task.problems("train"), renderer), None),
        (
            new_data,
            BatchRewarder(reward=build_rewards(arithmetic_reward_specs(0.1)), renderer=renderer),
        ),
    ]:
        client = FakeTrainingClient(theta=theta)
        sink = FakeMetricsSink()
        run_rl(
            RlLoopConfig(max_steps=4, max_tokens=4, learning_rate=0.5, save_every=0),
            training=client,
            dataset=dataset,
            rewarder=rewarder,
            metrics=sink,
            run_store=FakeRunStore(),
        )
        runs.append((client, sink))
    (old, old_sink), (new, new_sink) = runs
    assert len(old.batches) == len(new.batches) == 4
    for before, after in zip(old.batches, new.batches, strict=True):
        assert len(before.datums) == len(after.datums)
        for a, b in zip(before.datums, after.datums, strict=True):
            assert a.model_input.to_ints() == b.model_input.to_ints()
            for key in ("target_tokens", "logprobs", "advantages"):
                assert (
                    a.loss_fn_inputs[key].to_numpy().tolist()
                    == b.loss_fn_inputs[key].to_numpy().tolist()
                )
    rewards = [row["reward/mean"] for _, row in old_sink.rows]
    assert len(set(rewards)) > 1  # the answers differ: the comparison can fail
    for (_, before_row), (_, after_row) in zip(old_sink.rows, new_sink.rows, strict=True):
        kept = {k: v for k, v in before_row.items() if not k.startswith("time/")}
        assert kept == {k: after_row[k] for k in kept}
