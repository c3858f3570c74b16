"""How eval generates: one ask per input for its K copies, per-input seeds, sampling defaults."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from crucible_train.core.evaluation import EvalConfig, EvalSample, repeat_sample, stream_evaluate
from crucible_train.entrypoints.eval_generation import (
    DEFAULT_MAX_TOKENS,
    Answerer,
    SamplingOptions,
    input_seed,
)
from crucible_train.errors import InvalidDataError
from crucible_train.types import SamplingParams


class Recorder:
    """An ``ask`` that answers ``<key>/<i>`` and records its calls (thread-safe)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[list[dict[str, Any]], int, str]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, messages: Sequence[Mapping[str, Any]], count: int, key: str) -> list[str]:
        with self._lock:
            self.calls.append(([dict(m) for m in messages], count, key))
        if self.fail:
            raise RuntimeError("backend down")
        return [f"{key}/{i}" for i in range(count)]


def test_a_sample_is_asked_with_its_messages_and_id() -> None:
    ask = Recorder()
    answer = Answerer(ask)(EvalSample(id="q", input="hi"))
    assert answer == "q/0"
    assert ask.calls == [([{"role": "user", "content": "hi"}], 1, "q")]


def test_the_copies_of_one_input_share_one_ask_through_the_runner() -> None:
    ask = Recorder()
    samples = [
        copy
        for sample in (EvalSample(id="a", input="x"), EvalSample(id="b", input="y"))
        for copy in repeat_sample(sample, 3)
    ]
    config = EvalConfig(scorers=("contains",), generate=Answerer(ask))
    results = list(stream_evaluate(samples, config, chunk_size=2, concurrency=4))
    assert [(r.id, r.output) for r in results] == [
        ("a#0", "a/0"),
        ("a#1", "a/1"),
        ("a#2", "a/2"),
        ("b#0", "b/0"),
        ("b#1", "b/1"),
        ("b#2", "b/2"),
    ]
    assert sorted((count, key) for _, count, key in ask.calls) == [(3, "a"), (3, "b")]


def test_a_failing_ask_fails_every_copy() -> None:
    config = EvalConfig(scorers=("contains",), generate=Answerer(Recorder(fail=True)))
    samples = list(repeat_sample(EvalSample(id="a", input="x", target=""), 2))
    results = list(stream_evaluate(samples, config, concurrency=2))
    assert [r.error for r in results] == ["generate: RuntimeError: backend down"] * 2


def test_a_sample_without_input_cannot_be_answered() -> None:
    with pytest.raises(InvalidDataError, match="neither output nor input"):
        Answerer(Recorder())(EvalSample(id="a"))


def test_input_seeds_are_stable_and_differ_between_inputs_and_seeds() -> None:
    assert input_seed(1, "a") == input_seed(1, "a")
    assert len({input_seed(1, "a"), input_seed(1, "b"), input_seed(2, "a")}) == 3
    assert 0 <= input_seed(1, "a") < 2**31


def test_a_model_is_sampled_greedily_unless_told_otherwise() -> None:
    assert SamplingOptions().for_model() == SamplingParams(
        temperature=0.0, max_tokens=DEFAULT_MAX_TOKENS, top_p=1.0
    )
    options = SamplingOptions(temperature=1.0, max_tokens=8, top_p=0.9, seed=3, num_samples=4)
    assert options.for_model() == SamplingParams(temperature=1.0, max_tokens=8, top_p=0.9, seed=3)
    assert options.given() == {"temperature": 1.0, "max_tokens": 8, "top_p": 0.9, "seed": 3}
    assert SamplingOptions().given() == {}
    with pytest.raises(InvalidDataError, match="temperature"):
        SamplingOptions(temperature=-1.0).for_model()
