"""On-policy distillation: reverse-KL advantages, teacher_kl, format check, the loop, the
held-out teacher KL (fakes)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pytest

from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.distill import (
    DistillLoopConfig,
    TeacherKLEvaluator,
    check_same_format,
    distillation_advantages,
    run_distill,
)
from crucible_train.core.training.envs import (
    EnvGroupBuilder,
    GroupOf,
    PromptOnlyEnv,
    Trajectory,
    Transition,
)
from crucible_train.core.training.rl import trajectory_to_datums
from crucible_train.errors import ConfigurationError
from crucible_train.types import ModelInput, TokensWithLogprobs

from fakes import FakeMetricsSink, FakeRunStore, FakeSamplingClient, FakeTrainingClient
from fakes.tokenizer import FakeTokenizer


class PromptDataset:
    """Batches of two prompt-only groups of three (reward 0)."""

    def __len__(self) -> int:
        return 5

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        return [
            GroupOf(functools.partial(PromptOnlyEnv, ModelInput.from_ints([60 + index, g]), [0]), 3)
            for g in range(2)
        ]


def _item(observation: list[int], action: list[int], logprobs: list[float]) -> object:
    transition = Transition(
        observation=ModelInput.from_ints(observation),
        action=TokensWithLogprobs(tokens=action, logprobs=logprobs, stop_reason="stop"),
        reward=0.0,
        episode_done=True,
    )
    (item,) = trajectory_to_datums(Trajectory(transitions=(transition,)), 0.0)
    return item


def test_reverse_kl_advantage_and_teacher_kl() -> None:
    a = _item([1, 2], [3, 4], [-1.0, -2.0])
    b = _item([1], [5], [-0.5])
    teacher = [
        np.asarray([-9.0, -3.0, -0.5], dtype=np.float32),  # targets 2 (prompt), 3, 4
        np.asarray([-0.5], dtype=np.float32),
    ]
    (new_a, new_b), kl = distillation_advantages([a, b], teacher, kl_coef=2.0)  # type: ignore[list-item]
    # r = (log q - log p) * mask: a -> [0, 2.0, -1.5], b -> [0.0]; sum 0.5 over 3 tokens
    assert kl == pytest.approx(0.5 / 3)
    adv_a = new_a.datum.loss_fn_inputs["advantages"].to_numpy()
    adv_b = new_b.datum.loss_fn_inputs["advantages"].to_numpy()
    # advantages = -coef * (r - mean(r)) on action tokens (mean 1/6 is the baseline)
    assert adv_a.tolist() == pytest.approx([0.0, -2.0 * (2.0 - 1 / 6), -2.0 * (-1.5 - 1 / 6)])
    assert adv_b.tolist() == pytest.approx([2.0 / 6])


def test_mismatched_teacher_and_student_are_refused() -> None:
    check_same_format("qwen3_instruct", "qwen3_instruct", 512, 512)
    with pytest.raises(ConfigurationError, match=r"renderers differ.*'llama3'"):
        check_same_format("qwen3_instruct", "llama3", 512, 512)
    with pytest.raises(ConfigurationError, match=r"vocabularies differ.*512.*1024"):
        check_same_format("qwen3_instruct", "qwen3_instruct", 512, 1024)


def test_the_loop_config_refuses_a_loss_that_is_not_a_policy_loss() -> None:
    assert DistillLoopConfig().loss_fn == "importance_sampling"
    with pytest.raises(ConfigurationError, match="loss_fn"):
        DistillLoopConfig(loss_fn="cross_entropy")


def _unigram(preferred: dict[int, float]) -> np.ndarray:
    """Logits that keep (almost) all mass on tokens 1..9, with extra weight on some."""
    theta = np.full(1024, -10.0)
    theta[1:10] = 0.0
    for token, logit in preferred.items():
        theta[token] = logit
    return theta


def test_distill_loop_trains_on_teacher_scored_samples() -> None:
    # The student spreads its samples over tokens 1..9; the teacher prefers token 1.
    client = FakeTrainingClient(theta=_unigram({}))
    teacher = FakeSamplingClient(theta=_unigram({1: 3.0}))
    sink = FakeMetricsSink()
    store = FakeRunStore()
    result = run_distill(
        DistillLoopConfig(max_steps=3, save_every=0),
        training=client,
        teacher=teacher,
        dataset=PromptDataset(),
        metrics=sink,
        run_store=store,
    )
    assert result.steps_done == 3
    assert all("teacher_kl" in row for _, row in sink.rows)
    # r = log q_student - log p_teacher on the student's samples estimates KL > 0.
    assert all(float(row["teacher_kl"]) > 0 for _, row in sink.rows)
    loss, _, datums = client.batches[0]
    assert loss == "importance_sampling"
    advantages = np.concatenate([d.loss_fn_inputs["advantages"].to_numpy() for d in datums])
    # Centred on the batch mean: they sum to zero, tokens the teacher likes more than
    # average are pushed up, the others down.
    assert abs(float(advantages.sum())) < 1e-4
    assert advantages.max() > 0 > advantages.min()
    assert store.records[-1].final


def _renderer() -> Renderer:
    return get_renderer(
        "qwen3_instruct",
        FakeTokenizer(special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos=None),
    )


def test_held_out_teacher_kl_scores_the_students_samples() -> None:
    renderer = _renderer()
    student = FakeSamplingClient(
        [TokensWithLogprobs(tokens=[5, 6], logprobs=[-1.0, -2.0], stop_reason="stop")]
    )
    teacher = FakeSamplingClient(theta=_unigram({5: 3.0}))
    prompts = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "bb"}]]
    evaluator = TeacherKLEvaluator(
        prompts=prompts, renderer=renderer, teacher=teacher, max_tokens=4, temperature=1.0, seed=7
    )
    assert evaluator.name == "teacher_kl"
    result = evaluator(student)
    log_p = teacher.theta - np.log(np.exp(teacher.theta).sum())
    expected = ((-1.0 - log_p[5]) + (-2.0 - log_p[6])) / 2  # the same per prompt
    assert result == {"teacher_kl": pytest.approx(expected)}
    # One sample per prompt, seeded, at the training temperature, with the renderer's stops.
    assert [(n, p.seed, p.temperature, p.max_tokens) for _, n, p in student.calls] == [
        (1, 7, 1.0, 4),
        (1, 7, 1.0, 4),
    ]
    assert [call[0] for call in student.calls] == [
        renderer.build_generation_prompt(p) for p in prompts
    ]


def test_held_out_teacher_kl_needs_prompts() -> None:
    with pytest.raises(ConfigurationError, match="at least one held-out prompt"):
        TeacherKLEvaluator(
            prompts=[],
            renderer=_renderer(),
            teacher=FakeSamplingClient(),
            max_tokens=4,
            temperature=1.0,
            seed=0,
        )
