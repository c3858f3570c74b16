"""Tests for the in-training evaluators and their runner."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from crucible_train.core.evaluation.evaluators import (
    ComparisonEvaluator,
    EvaluatorRunner,
    NLLEvaluator,
    SamplingClientEvaluator,
    TrainingClientEvaluator,
    compute_mean_nll,
    parse_verdict,
    wilson_interval,
)
from crucible_train.errors import ConfigurationError, InvalidDataError, LLMClientError
from crucible_train.types import Datum, ModelInput, TensorData

from fakes import FakeLLMClient, FakeMetricsSink, FakeTrainingClient


def _datum(tokens: Sequence[int], weights: Sequence[float]) -> Datum:
    return Datum(
        model_input=ModelInput.from_ints(tokens),
        loss_fn_inputs={
            "target_tokens": TensorData.from_list([t + 1 for t in tokens], dtype="int64"),
            "weights": TensorData.from_list(list(weights), dtype="float32"),
        },
    )


def _scripted(logprobs: Sequence[Sequence[float]]) -> FakeTrainingClient:
    """A training fake whose forward reports ``logprobs``, one row per datum, in order."""
    rows = iter(logprobs)
    return FakeTrainingClient(logprobs=lambda _datum: next(rows))


def _judge(answer: str = "Reasoning...\nVerdict: A") -> FakeLLMClient:
    """Always prefers whichever response is shown first (records every prompt)."""
    return FakeLLMClient(answer)


def _scripted_judge(by_first: Mapping[str, str]) -> FakeLLMClient:
    """Answers by which text appears as Response A: a lookup of verdicts per first response."""
    return FakeLLMClient(
        lambda prompt: by_first[prompt.split("[Response A]\n", 1)[1].split("\n", 1)[0]]
    )


# --- NLL ------------------------------------------------------------------------------------


def test_compute_mean_nll_is_weighted_and_ignores_masked_minus_inf() -> None:
    assert compute_mean_nll([[-1.0, -3.0]], [[1.0, 1.0]]) == pytest.approx(2.0)
    # A masked prompt position may be -inf; it must not turn the mean into NaN.
    assert compute_mean_nll([[-math.inf, -2.0]], [[0.0, 1.0]]) == pytest.approx(2.0)
    with pytest.raises(InvalidDataError, match="total weight 0"):
        compute_mean_nll([[-1.0]], [[0.0]])


def test_nll_evaluator_uses_forward_only_in_batches() -> None:
    datums = [_datum([1, 2], [1, 1]), _datum([3, 4], [0, 1]), _datum([5], [1])]
    client = _scripted([[-1.0, -3.0], [-9.0, -2.0], [-4.0]])
    evaluator = NLLEvaluator(datums=datums, batch_size=2)
    assert isinstance(evaluator, TrainingClientEvaluator)
    metrics = evaluator(client)
    assert client.forward_calls == [(2, "cross_entropy"), (1, "cross_entropy")]
    assert client.batches == []  # no gradient call
    assert client.trained == []  # no optimiser step
    assert metrics["nll"] == pytest.approx((1 + 3 + 2 + 4) / 4)
    assert metrics["nll/weight"] == 4.0


def test_nll_evaluator_zero_weight_is_an_error_counted_by_the_runner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _scripted([[-1.0]] * 10)
    sink = FakeMetricsSink()
    runner = EvaluatorRunner(
        evaluators=[NLLEvaluator(datums=[_datum([1], [0])])], metrics=sink, every=1
    )
    with caplog.at_level(logging.WARNING):
        assert runner.maybe_run(0, training_client=client) == {"test/nll/errors": 1.0}
        assert runner.maybe_run(1, training_client=client) == {"test/nll/errors": 2.0}
    assert len([r for r in caplog.records if "nll" in r.getMessage()]) == 1  # logged once
    assert sink.rows == [(0, {"test/nll/errors": 1.0}), (1, {"test/nll/errors": 2.0})]
    assert runner.errors == {"nll": 2}


def test_nll_evaluator_refuses_datums_without_weights() -> None:
    bare = Datum(model_input=ModelInput.from_ints([1, 2]))
    with pytest.raises(ConfigurationError, match="lack target_tokens or weights"):
        NLLEvaluator(datums=[bare])
    with pytest.raises(ConfigurationError, match="at least one"):
        NLLEvaluator(datums=[])


@pytest.mark.torch
def test_nll_evaluator_on_local_torch_leaves_grads_untouched(tmp_path: Any) -> None:
    pytest.importorskip("torch")
    from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient

    client = LocalTorchTrainingClient(
        vocab_size=64,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=16,
        intermediate_size=64,
        max_seq_length=64,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    try:
        datums = [_datum([1, 2, 3, 4], [0, 1, 1, 1]), _datum([5, 6, 7], [1, 1, 1])]
        metrics = NLLEvaluator(datums=datums, batch_size=1)(client)
        assert math.isfinite(metrics["nll"])
        assert metrics["nll"] > 0
        # Random weights over 64 tokens: the NLL is near ln(64).
        assert metrics["nll"] == pytest.approx(math.log(64), abs=1.5)
        assert all(p.grad is None for p in client.model.parameters())
    finally:
        client.close()


# --- runner ---------------------------------------------------------------------------------


class ConstantEvaluator:
    client_kind = "sampling"

    def __init__(self, name: str, value: float) -> None:
        self.name = name
        self.value = value
        self.calls: list[object] = []

    def __call__(self, sampling_client: Any) -> dict[str, float]:
        self.calls.append(sampling_client)
        return {self.name: self.value}


def test_runner_cadence_prefix_and_logging() -> None:
    sink = FakeMetricsSink()
    evaluator = ConstantEvaluator("score", 0.25)
    assert isinstance(evaluator, SamplingClientEvaluator)
    runner = EvaluatorRunner(evaluators=[evaluator], metrics=sink, every=3, prefix="val/")
    client = object()
    logged = [runner.maybe_run(step, sampling_client=client) for step in range(7)]  # type: ignore[arg-type]
    assert [bool(m) for m in logged] == [True, False, False, True, False, False, True]
    assert logged[3] == {"val/score": 0.25}
    assert sink.rows == [
        (0, {"val/score": 0.25}),
        (3, {"val/score": 0.25}),
        (6, {"val/score": 0.25}),
    ]
    assert evaluator.calls == [client, client, client]


def test_runner_every_zero_disables_and_negative_is_refused() -> None:
    sink = FakeMetricsSink()
    evaluator = ConstantEvaluator("x", 1.0)
    runner = EvaluatorRunner(evaluators=[evaluator], metrics=sink, every=0)
    assert runner.maybe_run(0, sampling_client=object()) == {}  # type: ignore[arg-type]
    assert sink.rows == []
    with pytest.raises(ConfigurationError, match=">= 0"):
        EvaluatorRunner(evaluators=[], metrics=sink, every=-1)
    with pytest.raises(ConfigurationError, match="unique"):
        EvaluatorRunner(evaluators=[evaluator, evaluator], metrics=sink, every=1)


def test_runner_skips_evaluators_without_their_client_and_keeps_others() -> None:
    sink = FakeMetricsSink()

    class Broken(ConstantEvaluator):
        def __call__(self, sampling_client: Any) -> dict[str, float]:
            raise RuntimeError("boom")

    nll = NLLEvaluator(datums=[_datum([1], [1])])
    runner = EvaluatorRunner(
        evaluators=[nll, Broken("broken", 0), ConstantEvaluator("ok", 1.0)],
        metrics=sink,
        every=1,
    )
    result = runner.maybe_run(5, sampling_client=object())  # type: ignore[arg-type]
    assert result == {"test/broken/errors": 1.0, "test/ok": 1.0}


# --- comparison -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Verdict: A", "A"),
        ("blah\n**Verdict:** [[B]]", "B"),
        ("verdict - Tie", "tie"),
        ("Verdict: Response B", "B"),
        ("I think A.\nVerdict: A\nOn reflection, Verdict: B", "B"),
        ("A", "A"),
        ("**b**", "B"),
        ("Long text.\nDraw", "tie"),
        ("Both A and B are fine", None),
        ("", None),
    ],
)
def test_parse_verdict(text: str, expected: str | None) -> None:
    assert parse_verdict(text) == expected


def test_wilson_interval() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3)
    assert high == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0)
    assert 0.6 < low < 0.75


def test_position_biased_judge_gives_exactly_half_after_both_orders() -> None:
    judge = _judge()
    pairs = [("q1", "good", "bad"), ("q2", "bad", "good"), ("q3", "x", "y")]
    evaluator = ComparisonEvaluator(judge=judge, pairs=pairs)
    metrics = evaluator()
    assert metrics["comparison/win_rate"] == 0.5
    assert metrics["comparison/n"] == 3.0
    assert metrics["comparison/inconsistent"] == 3.0
    assert metrics["comparison/ties"] == 0.0
    assert metrics["comparison/parse_failures"] == 0.0
    assert metrics["comparison/ci95_low"] < 0.5 < metrics["comparison/ci95_high"]
    # Both orders were asked: A/B first, then B/A.
    assert len(judge.prompts) == 6
    assert judge.prompts[0].index("good") < judge.prompts[0].index("bad")
    assert judge.prompts[1].index("bad") < judge.prompts[1].index("good")


def test_consistent_judge_scores_wins_ties_and_parse_failures() -> None:
    judge = _scripted_judge(
        {
            "win": "Verdict: A",  # prefers "win" in both orders
            "lose": "Verdict: B",
            "same1": "Verdict: tie",
            "same2": "tie",
            "junk1": "no idea",
            "junk2": "Verdict: A",
        }
    )
    pairs = [("p", "win", "lose"), ("p", "same1", "same2"), ("p", "junk1", "junk2")]
    metrics = ComparisonEvaluator(judge=judge, pairs=pairs, concurrency=3)()
    assert metrics["comparison/n"] == 2.0
    assert metrics["comparison/win_rate"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["comparison/ties"] == 1.0
    assert metrics["comparison/parse_failures"] == 1.0


def test_judge_that_never_answers_readably_is_an_error() -> None:
    with pytest.raises(LLMClientError, match="no readable verdict"):
        ComparisonEvaluator(judge=_judge("hmm"), pairs=[("p", "a", "b")])()
    with pytest.raises(ConfigurationError):
        ComparisonEvaluator(judge=_judge(), pairs=[])


def test_win_rate_matches_arrays() -> None:
    # Sanity: the pair score is the mean of the two orders' scores.
    judge = _scripted_judge({"a": "Verdict: A", "b": "Verdict: tie"})
    metrics = ComparisonEvaluator(judge=judge, pairs=[("p", "a", "b")])()
    assert metrics["comparison/win_rate"] == pytest.approx(np.mean([1.0, 0.5]))
