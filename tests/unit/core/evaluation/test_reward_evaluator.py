"""The greedy test-set reward evaluator: what it samples, what it returns, what it refuses."""

from __future__ import annotations

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.datasets import PromptRow
from crucible_train.core.evaluation.reward_evaluator import RewardEvaluator
from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.rewards import build_rewards
from crucible_train.errors import ConfigurationError
from crucible_train.types import TokensWithLogprobs

from fakes import FakeSamplingClient


@pytest.fixture
def renderer() -> Renderer:
    tokenizer = ByteLevelTokenizer(
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], vocab_size=512
    )
    return get_renderer("qwen3_instruct", tokenizer)


def _reply(renderer: Renderer, text: str, *, stop: bool = True) -> TokensWithLogprobs:
    tokens = renderer.tokenizer.encode(text, allow_special=False)
    if stop:
        tokens += [int(t) for t in renderer.get_stop_sequences()]
    return TokensWithLogprobs(
        tokens=tokens, logprobs=[0.0] * len(tokens), stop_reason="stop" if stop else "length"
    )


def _rows(*answers: str) -> list[PromptRow]:
    return [
        PromptRow(prompt=({"role": "user", "content": f"q{a}"},), answer=a, extras={"answer": a})
        for a in answers
    ]


def test_answers_greedily_and_returns_the_total_and_each_component(renderer: Renderer) -> None:
    reward = build_rewards([{"name": "exact_match"}, {"name": "format", "weight": 0.5}])
    sampler = FakeSamplingClient([_reply(renderer, "a"), _reply(renderer, "x", stop=False)])
    evaluator = RewardEvaluator(
        rows=_rows("a", "b"), renderer=renderer, reward=reward, max_tokens=5
    )
    assert evaluator.name == "reward"
    assert evaluator(sampler) == {"reward": (1.5 + 0.0) / 2, "exact_match": 0.5, "format": 0.5}
    prompt, n, params = sampler.calls[0]
    assert (n, params.temperature, params.max_tokens) == (1, 0.0, 5)
    assert prompt == renderer.build_generation_prompt(_rows("a")[0].prompt)


def test_without_components_only_the_total_is_returned(renderer: Renderer) -> None:
    reward = build_rewards({"name": "exact_match", "label": "accuracy"})
    evaluator = RewardEvaluator(
        rows=_rows("a"),
        renderer=renderer,
        reward=reward,
        max_tokens=3,
        name="accuracy",
        components=False,
    )
    assert evaluator(FakeSamplingClient([_reply(renderer, "a")])) == {"accuracy": 1.0}


def test_refuses_no_rows_a_bad_length_and_a_label_equal_to_its_key(renderer: Renderer) -> None:
    reward = build_rewards("exact_match")
    with pytest.raises(ConfigurationError, match="at least one prompt row"):
        RewardEvaluator(rows=[], renderer=renderer, reward=reward, max_tokens=3)
    with pytest.raises(ConfigurationError, match="max_tokens is 0"):
        RewardEvaluator(rows=_rows("a"), renderer=renderer, reward=reward, max_tokens=0)
    labelled = build_rewards({"name": "exact_match", "label": "reward"})
    with pytest.raises(ConfigurationError, match="relabel it"):
        RewardEvaluator(rows=_rows("a"), renderer=renderer, reward=labelled, max_tokens=3)
