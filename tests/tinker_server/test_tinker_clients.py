"""The Tinker training and sampling adapters against a real skyrl-tx server:
checkpoints that restore exactly, and sampling / scoring with log-probabilities."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from crucible_train.core.training.data import conversations_to_datums
from crucible_train.recipes.arithmetic.task import ArithmeticTask
from crucible_train.types import AdamParams, Datum, ModelInput, SamplingParams

pytestmark = pytest.mark.tinker_server


def _datums(renderer: Any, count: int = 4) -> list[Datum]:
    problems = ArithmeticTask(max_operand=9, seed=0).problems("train")[:count]
    data = conversations_to_datums(
        [{"messages": p.messages()} for p in problems],
        renderer,
        train_on_what="last_assistant_message",
    )
    return list(data.datums)


def _forward_logprobs(client: Any, datums: list[Datum]) -> list[np.ndarray]:
    out = client.forward(datums, "cross_entropy").result()
    assert len(out.loss_fn_outputs) == len(datums)
    return [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]


def test_a_client_from_saved_state_gives_identical_logprobs(
    training_clients: Any, renderer: Any
) -> None:
    datums = _datums(renderer)
    trained = training_clients()
    for _ in range(2):  # move the weights away from the initial LoRA
        trained.forward_backward(datums, "cross_entropy")
        trained.optim_step(AdamParams(learning_rate=2e-2))
    path = trained.save_state("roundtrip").result()
    assert path.startswith("tinker://"), path
    expected = _forward_logprobs(trained, datums)
    for logprobs, datum in zip(expected, datums, strict=True):
        assert logprobs.shape == (datum.model_input.length,)

    restored = training_clients()
    before = _forward_logprobs(restored, datums)
    # The fresh client starts elsewhere, so matching afterwards means the state loaded.
    assert not all(np.allclose(b, e, atol=1e-4) for b, e in zip(before, expected, strict=True))
    restored.load_state(path).result()
    after = _forward_logprobs(restored, datums)
    for got, want in zip(after, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # Training on from the restored state matches training on from the original.
    for client in (trained, restored):
        client.forward_backward(datums, "cross_entropy")
        client.optim_step(AdamParams(learning_rate=2e-2))
    for got, want in zip(
        _forward_logprobs(restored, datums), _forward_logprobs(trained, datums), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_pipelined_calls_run_in_submission_order(training_clients: Any, renderer: Any) -> None:
    """The port's promise: forward_backward/optim_step submitted back to back without
    waiting train exactly as the same calls awaited one by one."""
    datums = _datums(renderer)
    adam = AdamParams(learning_rate=2e-2)
    waited = training_clients()
    for _ in range(3):
        waited.forward_backward(datums, "cross_entropy").result()
        waited.optim_step(adam).result()
    pipelined = training_clients()
    futures = []
    for _ in range(3):
        futures.append(pipelined.forward_backward(datums, "cross_entropy"))
        futures.append(pipelined.optim_step(adam))
    for future in futures:
        future.result()
    for got, want in zip(
        _forward_logprobs(pipelined, datums), _forward_logprobs(waited, datums), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_sampling_returns_tokens_with_their_logprobs(training_clients: Any, renderer: Any) -> None:
    training = training_clients()
    path = training.save_weights_for_sampler("sampling-test").result()
    assert path.startswith("tinker://"), path
    sampler = training.create_sampling_client(path)
    prompt = renderer.build_generation_prompt([{"role": "user", "content": "What is 2 + 3?"}])
    assert isinstance(prompt, ModelInput)
    params = SamplingParams(max_tokens=8, temperature=1.0, seed=7)
    response = sampler.sample(prompt, 3, params).result()
    assert len(response.sequences) == 3
    vocab = renderer.tokenizer.vocab_size
    for sequence in response.sequences:
        assert 1 <= len(sequence.tokens) <= 8
        assert all(0 <= t < vocab for t in sequence.tokens)
        assert sequence.logprobs is not None
        assert len(sequence.logprobs) == len(sequence.tokens)
        assert all(math.isfinite(lp) and lp <= 0.0 for lp in sequence.logprobs)
        assert sequence.stop_reason in ("stop", "length")

    # Scoring prompt + sample gives back the sampled tokens' logprobs (temperature 1).
    sequence = response.sequences[0]
    full = ModelInput.from_ints([*prompt.to_ints(), *sequence.tokens])
    scored = sampler.compute_logprobs(full).result()
    assert len(scored) == full.length
    assert scored[0] is None
    rest = scored[1:]
    assert all(lp is not None and math.isfinite(lp) and lp <= 0.0 for lp in rest)
    np.testing.assert_allclose(
        np.array(rest[-len(sequence.tokens) :], dtype=np.float64),
        np.array(sequence.logprobs, dtype=np.float64),
        atol=1e-3,
    )


def test_compute_logprobs_of_a_prompt(training_clients: Any, renderer: Any) -> None:
    training = training_clients()
    sampler = training.create_sampling_client(training.save_weights_for_sampler("score").result())
    prompt = renderer.build_generation_prompt([{"role": "user", "content": "What is 7 - 4?"}])
    scored = sampler.compute_logprobs(prompt).result()
    assert len(scored) == prompt.length
    assert scored[0] is None
    assert all(lp is not None and math.isfinite(lp) and lp <= 0.0 for lp in scored[1:])
