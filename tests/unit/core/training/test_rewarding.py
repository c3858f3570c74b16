"""The batch rewarder and RL on prompt rows: rewards into groups, rows left out, failure
policy, token-in/token-out, the metric set, and resume of a dataset run (fakes)."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from crucible_train.core.datasets import PromptRow
from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.rewards import CombinedReward, RewardInput, WeightedReward
from crucible_train.core.training.envs import Trajectory, TrajectoryGroup, Transition
from crucible_train.core.training.prompt_rows import PromptGroup, PromptRowDataset
from crucible_train.core.training.rewarding import (
    BatchRewarder,
    check_reward_specs,
    reward_clients,
)
from crucible_train.core.training.rl import RlLoopConfig, run_rl
from crucible_train.errors import ConfigurationError, RewardError
from crucible_train.types import TokensWithLogprobs

from fakes import (
    FakeMetricsSink,
    FakeRunStore,
    FakeSamplingClient,
    FakeTrainingClient,
    FakeTrainingState,
)
from fakes.tokenizer import FakeTokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture
def tokenizer() -> FakeTokenizer:
    return FakeTokenizer(special_tokens=SPECIALS, eos=None)


@pytest.fixture
def renderer(tokenizer: FakeTokenizer) -> Renderer:
    return get_renderer("qwen3_instruct", tokenizer)


class Scripted:
    """A reward keyed on the completion text: ``"1"`` 1.0, ``"skip"`` None, ``"boom"``
    raises, ``"nan"`` NaN, anything else 0.0."""

    name = "scripted"

    def __call__(self, sample: RewardInput) -> float | None:
        text = sample.completion_text
        if text == "skip":
            return None
        if text == "boom":
            raise KeyError("answer")
        if text == "nan":
            return math.nan
        return 1.0 if text == "1" else 0.0


def _combined(rate: float = 0.5) -> CombinedReward:
    return CombinedReward(components=(WeightedReward(reward=Scripted()),), max_failure_rate=rate)


def _rows(n: int) -> list[PromptRow]:
    return [
        PromptRow(
            prompt=({"role": "user", "content": f"q{i}"},), answer=str(i), extras={"answer": str(i)}
        )
        for i in range(n)
    ]


def _stopped(renderer: Renderer, text: str) -> TokensWithLogprobs:
    stop = [int(t) for t in renderer.get_stop_sequences()]
    tokens = [*renderer.tokenizer.encode(text, allow_special=False), *stop]
    return TokensWithLogprobs(tokens=tokens, logprobs=[-0.5] * len(tokens), stop_reason="stop")


def _rolled(renderer: Renderer, row: PromptRow, texts: list[str]) -> tuple[PromptGroup, Any]:
    prompt = renderer.build_generation_prompt(row.prompt)
    group = PromptGroup(row, prompt, renderer.get_stop_sequences(), len(texts))
    trajectories = tuple(
        Trajectory(
            transitions=(
                Transition(
                    observation=prompt,
                    action=_stopped(renderer, t),
                    reward=0.0,
                    episode_done=True,
                ),
            )
        )
        for t in texts
    )
    return group, TrajectoryGroup(
        trajectories=trajectories,
        final_rewards=(0.0,) * len(texts),
        metrics=({},) * len(texts),
    )


def test_rewards_become_final_rewards_and_unrewardable_rows_are_left_out(
    renderer: Renderer,
) -> None:
    first, second = _rows(2)
    a = _rolled(renderer, first, ["1", "skip", "0", "boom"])
    b = _rolled(renderer, second, ["skip", "skip", "skip", "skip"])
    groups, metrics = BatchRewarder(reward=_combined(), renderer=renderer)(
        [a[0], b[0]], [a[1], b[1]]
    )
    (only,) = groups  # the all-None group is dropped
    assert only.total_rewards() == [1.0, 0.0]
    assert [
        renderer.parse_response(list(t.transitions[0].action.tokens))[0]["content"]
        for t in only.trajectories
    ] == ["1", "0"]
    assert metrics["reward/scripted/mean"] == 0.5
    assert metrics["reward/scripted/failures"] == 1.0
    assert metrics["reward/total/none"] == 6.0
    assert metrics["completion/parse_ok"] == 1.0
    assert "reward/total/mean" not in metrics  # the loop's reward/mean says it


def test_the_reward_sees_the_row_and_the_parsed_sampled_tokens(renderer: Renderer) -> None:
    seen: list[RewardInput] = []

    class Spy:
        name = "spy"

        def __call__(self, sample: RewardInput) -> float:
            seen.append(sample)
            return 0.0

    (row,) = _rows(1)
    group, rolled = _rolled(renderer, row, ["hi"])
    reward = CombinedReward(components=(WeightedReward(reward=Spy()),))
    BatchRewarder(reward=reward, renderer=renderer)([group], [rolled])
    (sample,) = seen
    assert sample.prompt == row.prompt
    assert sample.extras == {"answer": "0"}
    assert sample.completion_text == "hi"
    assert sample.completion_tokens == rolled.trajectories[0].transitions[0].action.tokens
    assert (sample.parse_ok, sample.stop_reason) == (True, "stop")


@pytest.mark.parametrize("bad", ["boom", "nan"])
def test_failures_above_the_rate_stop_with_the_first_error(renderer: Renderer, bad: str) -> None:
    (row,) = _rows(1)
    group, rolled = _rolled(renderer, row, ["1", bad, bad, "0"])
    with pytest.raises(RewardError, match=r"'scripted' failed on 2 of 4 rows.*row 1"):
        BatchRewarder(reward=_combined(rate=0.25), renderer=renderer)([group], [rolled])


def test_specs_are_checked_up_front_without_clients() -> None:
    check_reward_specs([{"name": "judge", "rubric": "be right"}, "semantic_similarity"])
    with pytest.raises(ConfigurationError, match=r"unknown reward 'exact'; valid names: .*"):
        check_reward_specs("exact")
    with pytest.raises(ConfigurationError, match="unknown option"):
        check_reward_specs({"name": "format", "colour": "red"})
    with pytest.raises(ConfigurationError, match="does not import"):
        check_reward_specs("no_such_package_xyz.rewards:f")
    with pytest.raises(ConfigurationError, match="not a callable"):
        check_reward_specs("math:pi")
    assert reward_clients([{"name": "judge"}, "semantic_similarity", "exact_match"]) == {
        "llm",
        "embedding",
    }
    assert reward_clients(None) == frozenset()


# --- the loop on prompt rows --------------------------------------------------------------


def _dataset(renderer: Renderer, rows: int = 6, **kwargs: Any) -> PromptRowDataset:
    settings: dict[str, Any] = {"groups_per_batch": 2, "group_size": 3} | kwargs
    return PromptRowDataset(rows=_rows(rows), renderer=renderer, **settings)


def test_datums_train_the_sampled_ids_never_a_re_encoding(
    renderer: Renderer, tokenizer: FakeTokenizer
) -> None:
    stop = [int(t) for t in renderer.get_stop_sequences()]
    # 195 alone is not UTF-8: decoding gives U+FFFD, whose encoding is 3 other bytes.
    sampled = [ord("1"), 195, *stop]
    assert tokenizer.encode(tokenizer.decode(sampled[:2])) != sampled[:2]
    reply = TokensWithLogprobs(tokens=sampled, logprobs=[-0.5] * len(sampled), stop_reason="stop")
    client = FakeTrainingClient(sampler=FakeSamplingClient(replies=[reply]))
    dataset = _dataset(renderer, num_batches=1)
    prompts = [g.prompt.to_ints() for g in dataset.get_batch(0)]  # type: ignore[attr-defined]
    tokenizer.encoded.clear()
    run_rl(
        RlLoopConfig(max_steps=1),
        training=client,
        dataset=dataset,
        rewarder=BatchRewarder(reward=_combined(), renderer=renderer),
        metrics=FakeMetricsSink(),
        run_store=FakeRunStore(),
    )
    # Only prompts were encoded (the batch's, rebuilt by get_batch): no completion text.
    assert tokenizer.encoded
    assert not any("\ufffd" in text for text in tokenizer.encoded)
    datums = client.batches[0].datums
    assert len(datums) == 6
    for datum, prompt in zip(datums, [p for p in prompts for _ in range(3)], strict=True):
        full = [
            *datum.model_input.to_ints(),
            int(datum.loss_fn_inputs["target_tokens"].to_numpy()[-1]),
        ]
        assert full == [*prompt, *sampled]


def _dataset_run(
    renderer: Renderer,
    states: dict[str, FakeTrainingState],
    run: FakeRunStore,
    calls: list[Any],
    *,
    stop_after: int | None = None,
    resume: bool = False,
) -> FakeMetricsSink:
    vocab = 256 + len(SPECIALS)
    client = FakeTrainingClient(theta=np.zeros(vocab), states=states, sample_calls=calls)
    stop = threading.Event()

    def keep(step: int | None, metrics: Mapping[str, Any]) -> None:
        run.metrics.log_metrics(metrics, step)
        if stop_after is not None and step is not None and step + 1 >= stop_after:
            stop.set()

    recorder = FakeMetricsSink(on_metrics=keep)

    class HasA:
        name = "has_a"

        def __call__(self, sample: RewardInput) -> float:
            return float("a" in sample.completion_text)

    reward = CombinedReward(components=(WeightedReward(reward=HasA()),))
    run_rl(
        RlLoopConfig(max_steps=5, save_every=2, max_tokens=4, learning_rate=0.5),
        training=client,
        dataset=_dataset(renderer, rows=5, num_batches=5, shuffle_seed=3),
        rewarder=BatchRewarder(reward=reward, renderer=renderer),
        metrics=recorder,
        run_store=run,
        stop=stop,
        resume=resume,
    )
    return recorder


def _rows_of(run: FakeRunStore) -> list[dict[str, Any]]:
    return [
        {"step": step} | {k: v for k, v in row.items() if not k.startswith("time/")}
        for step, row in run.metrics.rows
    ]


def test_a_resumed_dataset_run_draws_the_rollouts_of_an_uninterrupted_one(
    renderer: Renderer,
) -> None:
    whole, whole_calls = FakeRunStore(), []  # type: ignore[var-annotated]
    recorder = _dataset_run(renderer, {}, whole, whole_calls)
    parts, parts_calls, states = FakeRunStore(), [], {}  # type: ignore[var-annotated]
    _dataset_run(renderer, states, parts, parts_calls, stop_after=3)
    _dataset_run(renderer, states, parts, parts_calls, resume=True)
    assert parts_calls == whole_calls
    assert _rows_of(parts) == _rows_of(whole)
    first = recorder.rows[0][1]
    expected = {
        "reward/mean",
        "reward/std",
        "reward/has_a/mean",
        "reward/has_a/failures",
        "frac_groups_zero_std",
        "completion/tokens_mean",
        "completion/tokens_max",
        "completion/truncated",
        "completion/parse_ok",
        "kl_sample_train_v1",
        "kl_sample_train_v2",
        "entropy",
        "time/sample_s",
        "time/train_s",
        "time/sample_tokens_per_s",
    }
    assert expected <= set(first)
    assert first["completion/tokens_max"] <= 4
