"""The built-in arithmetic task and its exact-match accuracy evaluator."""

from __future__ import annotations

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.errors import ConfigurationError
from crucible_train.recipes.arithmetic.evaluator import ArithmeticAccuracyEvaluator
from crucible_train.recipes.arithmetic.task import ArithmeticProblem, ArithmeticTask
from crucible_train.types import TokensWithLogprobs

from fakes import FakeSamplingClient

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def _renderer() -> Renderer:
    tokenizer = ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    return get_renderer("qwen3_instruct", tokenizer)


def test_splits_are_disjoint_deterministic_and_cover_everything() -> None:
    task = ArithmeticTask(max_operand=20)
    train, test = task.problems("train"), task.problems("test")
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(task.operations) * 21 * 21
    assert 0.05 < len(test) / (len(train) + len(test)) < 0.15
    # The split does not depend on the seed, only the order does.
    other = ArithmeticTask(max_operand=20, seed=1)
    assert set(other.problems("test")) == set(test)
    assert other.problems("test") != test
    assert task.problems("test", 5) == test[:5]


def test_addition_is_the_default_and_subtraction_can_be_added() -> None:
    assert ArithmeticTask().operations == ("+",)
    both = ArithmeticTask(max_operand=5, operations=("+", "-"))
    ops = {p.op for p in both.problems("train") + both.problems("test")}
    assert ops == {"+", "-"}


def test_problem_text_and_exact_match() -> None:
    problem = ArithmeticProblem(a=7, b=12, op="-")
    assert problem.question == "What is 7 - 12?"
    assert problem.answer == "-5"
    assert problem.messages()[-1] == {"role": "assistant", "content": "-5"}
    assert problem.prompt() == [{"role": "user", "content": "What is 7 - 12?"}]
    assert ArithmeticTask.is_correct(problem, " -5\n")
    assert not ArithmeticTask.is_correct(problem, "-50")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_operand": 0}, "max_operand"),
        ({"operations": ("*",)}, "operations"),
        ({"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_bad_task_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ArithmeticTask(**kwargs)  # type: ignore[arg-type]


def _reply(renderer: Renderer, text: str) -> TokensWithLogprobs:
    stop = renderer.get_stop_sequences()
    tokens = [*renderer.tokenizer.encode(text), *[int(t) for t in stop]]
    return TokensWithLogprobs(tokens=tokens, logprobs=[0.0] * len(tokens), stop_reason="stop")


def test_accuracy_evaluator_samples_greedily_and_scores_exact_matches() -> None:
    renderer = _renderer()
    problems = [ArithmeticProblem(a=1, b=2, op="+"), ArithmeticProblem(a=5, b=3, op="-")]
    sampler = FakeSamplingClient([_reply(renderer, "3"), _reply(renderer, "3")])
    evaluator = ArithmeticAccuracyEvaluator(problems=problems, renderer=renderer, max_tokens=6)
    assert evaluator.name == "accuracy"
    assert evaluator.client_kind == "sampling"
    assert evaluator(sampler) == {"accuracy": 0.5}
    assert len(sampler.calls) == 2
    prompt, n, params = sampler.calls[0]
    assert n == 1
    assert params.temperature == 0.0
    assert params.max_tokens == 6
    assert list(params.stop) == list(renderer.get_stop_sequences())
    assert prompt == renderer.build_generation_prompt(problems[0].prompt())


def test_accuracy_evaluator_submits_every_sample_before_gathering() -> None:
    renderer = _renderer()
    events: list[str] = []
    problems = [ArithmeticProblem(a=i, b=1, op="+") for i in range(3)]
    evaluator = ArithmeticAccuracyEvaluator(problems=problems, renderer=renderer)
    evaluator(FakeSamplingClient([_reply(renderer, "1")], events=events))
    assert [event.split(":")[0] for event in events] == ["sample"] * 3 + ["await sample"] * 3


def test_accuracy_evaluator_needs_problems() -> None:
    with pytest.raises(ConfigurationError, match="at least one problem"):
        ArithmeticAccuracyEvaluator(problems=[], renderer=_renderer())
    with pytest.raises(ConfigurationError, match="max_tokens"):
        ArithmeticAccuracyEvaluator(
            problems=[ArithmeticProblem(a=1, b=1, op="+")], renderer=_renderer(), max_tokens=0
        )
