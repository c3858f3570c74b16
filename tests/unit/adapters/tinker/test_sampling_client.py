"""TinkerSamplingClient against the in-process fake Tinker server, through the real SDK."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

tinker = pytest.importorskip("tinker")

from crucible_train.adapters.tinker.sampling_client import TinkerSamplingClient  # noqa: E402
from crucible_train.errors import InvalidDataError  # noqa: E402
from crucible_train.ports.sampling import SamplingClient  # noqa: E402
from crucible_train.types import ModelInput, SampleResponse, SamplingParams  # noqa: E402
from servers.fake_tinker import FakeTinker, serve  # noqa: E402

TIMEOUT = 30
PROMPT = ModelInput.from_ints([1, 2, 3])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from serve(monkeypatch)


@pytest.fixture
def make(fake: FakeTinker) -> Any:
    made: list[TinkerSamplingClient] = []

    def build(**overrides: Any) -> TinkerSamplingClient:
        client = TinkerSamplingClient(**fake.settings(**overrides))
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def test_sample_sends_every_sampling_parameter(fake, make):
    sampler = make()
    params = SamplingParams(max_tokens=4, temperature=0.5, top_p=0.9, top_k=5, seed=7, stop=[9])
    response = sampler.sample(PROMPT, 2, params).result(TIMEOUT)
    (body,) = fake.bodies("asample")
    assert body["num_samples"] == 2
    assert [t for chunk in body["prompt"]["chunks"] for t in chunk["tokens"]] == [1, 2, 3]
    sent = body["sampling_params"]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["top_k"]) == (
        4,
        0.5,
        0.9,
        5,
    )
    assert (sent["seed"], sent["stop"]) == (7, [9])
    assert isinstance(response, SampleResponse)
    assert len(response.sequences) == 2
    for sequence in response.sequences:
        assert 1 <= len(sequence.tokens) <= 4
        assert len(sequence.require_logprobs()) == len(sequence.tokens)
        if sequence.stop_reason == "length":
            assert len(sequence.tokens) == 4
        else:
            assert sequence.stop_reason == "stop"
            assert sequence.tokens[-1] == 9


def test_stop_strings_are_sent_as_strings_and_no_stop_keeps_eos(fake, make):
    sampler = make()
    sampler.sample(PROMPT, 1, SamplingParams(max_tokens=2, stop=["\n\n", "END"])).result(TIMEOUT)
    sampler.sample(PROMPT, 1, SamplingParams(max_tokens=2)).result(TIMEOUT)
    first, second = fake.bodies("asample")
    assert first["sampling_params"]["stop"] == ["\n\n", "END"]
    assert second["sampling_params"].get("stop") is None


def test_seeded_sampling_repeats_and_the_base_model_is_sampled_without_model_path(fake, make):
    sampler = make()
    params = SamplingParams(max_tokens=5, seed=11)
    first = sampler.sample(PROMPT, 2, params).result(TIMEOUT)
    again = sampler.sample(PROMPT, 2, params).result(TIMEOUT)
    assert [s.tokens for s in first.sequences] == [s.tokens for s in again.sequences]
    (session,) = fake.bodies("create_sampling_session")
    assert (session["base_model"], session.get("model_path")) == ("fake-base", None)


@pytest.mark.parametrize("leading_none", [False, True], ids=["skyrl", "hosted"])
def test_compute_logprobs_has_one_value_per_token_with_none_first(fake, make, leading_none):
    fake.leading_none = leading_none
    sampler = make()
    values = sampler.compute_logprobs(PROMPT).result(TIMEOUT)
    assert len(values) == PROMPT.length
    assert values[0] is None
    assert all(isinstance(v, float) and v < 0 for v in values[1:])
    (body,) = fake.bodies("asample")
    assert body["prompt_logprobs"] is True


def test_sampled_logprobs_agree_with_compute_logprobs(make):
    sampler = make()
    sequence = sampler.sample(PROMPT, 1, SamplingParams(max_tokens=4, seed=3)).result(TIMEOUT)
    tokens = sequence.sequences[0].tokens
    scored = sampler.compute_logprobs(ModelInput.from_ints([1, 2, 3, *tokens])).result(TIMEOUT)
    assert scored[3:] == pytest.approx(sequence.sequences[0].require_logprobs(), abs=1e-5)


def test_bad_input_fails_typed_without_a_request(fake, make):
    sampler = make()
    empty = sampler.sample(ModelInput.empty(), 1, SamplingParams())
    zero = sampler.sample(PROMPT, 0, SamplingParams())
    scored = sampler.compute_logprobs(ModelInput.empty())
    for future in (empty, zero, scored):
        assert isinstance(future.exception(TIMEOUT), InvalidDataError)
    assert fake.requests == []


def test_model_path_selects_sampler_weights(fake, make):
    path = "tinker://model_x/weights-for-sampling"
    fake.saved[path] = fake._initial.copy()
    sampler = make(model_path=path)
    sampler.sample(PROMPT, 1, SamplingParams(max_tokens=1)).result(TIMEOUT)
    assert fake.bodies("create_sampling_session")[0]["model_path"] == path


def test_pickles_as_settings_and_the_copy_opens_its_own_session(fake, make):
    sampler = make(api_key="tml-sampler-secret")
    assert "tml-sampler-secret" not in repr(sampler)
    sampler.sample(PROMPT, 1, SamplingParams(max_tokens=1)).result(TIMEOUT)  # connected
    copy = pickle.loads(pickle.dumps(sampler))
    try:
        assert isinstance(copy, SamplingClient)
        assert copy.settings == sampler.settings
        copy.sample(PROMPT, 1, SamplingParams(max_tokens=1)).result(TIMEOUT)
        assert fake.ops().count("create_session") == 2
    finally:
        copy.close()
