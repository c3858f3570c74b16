"""SamplingClient contract: protocol conformance, picklability; noop refuses every call;
a working sampler returns futures of well-formed responses whose temperature-1 logprobs
agree with ``compute_logprobs``.

Working adapters must accept token ids 0..7 (the suite's prompts use no larger id).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError, CrucibleError
from crucible_train.types import ModelInput, SampleResponse, SamplingParams, TokensWithLogprobs

PORT = "sampling"

PROMPT = ModelInput.from_ints([1, 2, 3])

CALLS: dict[str, Callable[[Any], object]] = {
    "sample": lambda c: c.sample(PROMPT, 2, SamplingParams(max_tokens=4)),
    "compute_logprobs": lambda c: c.compute_logprobs(PROMPT),
}


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_adapter_pickles(adapter, port_protocol):
    # Rollout workers receive sampling clients by pickle.
    assert isinstance(pickle.loads(pickle.dumps(adapter)), port_protocol)


def test_calls_cover_every_port_method(port_work_methods):
    assert set(CALLS) == port_work_methods


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)


def test_sample_returns_a_future_of_well_formed_sequences(working_adapter):
    future = working_adapter.sample(PROMPT, 3, SamplingParams(max_tokens=5, seed=0))
    assert isinstance(future, Future)
    response = future.result(timeout=120)
    assert isinstance(response, SampleResponse)
    assert len(response.sequences) == 3
    for sequence in response.sequences:
        assert isinstance(sequence, TokensWithLogprobs)
        assert 1 <= len(sequence.tokens) <= 5
        logprobs = sequence.require_logprobs()
        assert len(logprobs) == len(sequence.tokens)
        assert all(math.isfinite(lp) and lp <= 0 for lp in logprobs)
        assert sequence.stop_reason in ("stop", "length")
        if sequence.stop_reason == "length":
            assert len(sequence.tokens) == 5


def test_seeded_sampling_is_reproducible(working_adapter):
    params = SamplingParams(max_tokens=6, seed=1234, temperature=1.0)
    first = working_adapter.sample(PROMPT, 2, params).result(timeout=120)
    again = working_adapter.sample(PROMPT, 2, params).result(timeout=120)
    assert [s.tokens for s in first.sequences] == [s.tokens for s in again.sequences]


def test_compute_logprobs_returns_a_future_with_none_first(working_adapter):
    future = working_adapter.compute_logprobs(PROMPT)
    assert isinstance(future, Future)
    values = future.result(timeout=120)
    assert len(values) == PROMPT.length
    assert values[0] is None
    assert all(isinstance(v, float) and math.isfinite(v) and v <= 0 for v in values[1:])


def test_temperature_one_logprobs_agree_with_compute_logprobs(working_adapter):
    # At temperature 1 with no top-k/top-p every backend's processed distribution is the
    # model's own, so the sampler's logprobs must be what scoring the sequence gives.
    response = working_adapter.sample(PROMPT, 1, SamplingParams(max_tokens=6, seed=7))
    sequence = response.result(timeout=120).sequences[0]
    full = ModelInput.from_ints([*PROMPT.to_ints(), *sequence.tokens])
    scored = working_adapter.compute_logprobs(full).result(timeout=120)[PROMPT.length :]
    assert scored == pytest.approx(sequence.require_logprobs(), abs=1e-3)


def test_empty_prompt_fails_typed(working_adapter):
    with pytest.raises(CrucibleError):
        working_adapter.sample(ModelInput.empty(), 1, SamplingParams(max_tokens=2)).result(
            timeout=120
        )
