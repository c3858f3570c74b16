"""SamplingCompleter: an LLMClient over a SamplingClient and a chat renderer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from crucible_train.core.completers import PARSE_ERROR, ChatRenderer, SamplingCompleter
from crucible_train.errors import ConfigurationError, LLMClientError, SamplingClientError
from crucible_train.ports.llm import Completion, LLMClient, LLMParams
from crucible_train.ports.tokenizer import Tokenizer
from crucible_train.types import ModelInput, SamplingParams, TokensWithLogprobs

from fakes import FakeSamplingClient, FakeTokenizer

TOK = FakeTokenizer()
EOT = TOK.special_tokens["<eot>"]
EOS = TOK.special_tokens["<eos>"]


class ToyChatRenderer:
    """A minimal chat format: ``role: content<eot>`` per message, then ``assistant:``.

    ``parse_response`` wants the turn to end in ``<eot>``; without it the message is
    returned with ``ok`` false. ``calls`` records the messages of each prompt built.
    """

    def __init__(self, stops: list[int] | list[str] | None = None) -> None:
        self._tokenizer = FakeTokenizer()
        self._stops: list[int] | list[str] = [EOT] if stops is None else stops
        self.calls: list[list[dict[str, Any]]] = []

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def build_generation_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        prefill: str | None = None,
    ) -> ModelInput:
        self.calls.append([dict(m) for m in messages])
        text = "".join(f"{m['role']}: {m['content']}<eot>" for m in messages)
        return ModelInput.from_ints(self._tokenizer.encode(text + "assistant:" + (prefill or "")))

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        ended = bool(tokens) and tokens[-1] == EOT
        body = list(tokens[:-1]) if ended else list(tokens)
        return {"role": "assistant", "content": self._tokenizer.decode(body)}, ended

    def get_stop_sequences(self) -> list[int] | list[str]:
        return list(self._stops)


def seq(text: str, *, end: list[int] = (), stop_reason: str | None = "stop") -> TokensWithLogprobs:
    return TokensWithLogprobs(
        tokens=TOK.encode(text, allow_special=False) + list(end), stop_reason=stop_reason
    )


def make(
    replies: list[TokensWithLogprobs],
    params: SamplingParams | None = None,
    renderer: ToyChatRenderer | None = None,
) -> tuple[SamplingCompleter, FakeSamplingClient, ToyChatRenderer]:
    sampling = FakeSamplingClient(replies)
    renderer = renderer or ToyChatRenderer()
    completer = SamplingCompleter(
        sampling=sampling, renderer=renderer, params=params or SamplingParams(max_tokens=16)
    )
    return completer, sampling, renderer


def test_is_an_llm_client_and_the_toy_renderer_fits_the_protocol():
    completer, _, renderer = make([])
    assert isinstance(completer, LLMClient)
    assert isinstance(renderer, ChatRenderer)


def test_chat_renders_samples_one_and_parses():
    completer, sampling, renderer = make([seq("Paris", end=[EOT])])
    messages = [{"role": "user", "content": "Capital of France?"}]
    result = completer.chat(messages)
    assert result == Completion(
        text="Paris",
        finish_reason="stop",
        prompt_tokens=len("user: Capital of France?") + 1 + len("assistant:"),
        completion_tokens=6,
    )
    assert renderer.calls == [messages]
    prompt, num_samples, params = sampling.calls[0]
    assert num_samples == 1
    assert prompt == renderer.build_generation_prompt(messages)
    assert params.stop == (EOT,)  # the renderer's stop sequences are merged in
    assert params.max_tokens == 16


def test_chat_samples_asks_one_sample_call_for_several_answers():
    completer, sampling, _ = make([seq("Paris", end=[EOT])])
    messages = [{"role": "user", "content": "Capital of France?"}]
    answers = completer.chat_samples(messages, 3)
    assert [a.text for a in answers] == ["Paris"] * 3
    assert [num for _, num, _ in sampling.calls] == [3]  # one batched call, not three


def test_chat_samples_with_a_seed_are_reproducible_and_differ_at_temperature():
    def answers(seed: int) -> list[str]:
        completer = SamplingCompleter(
            sampling=FakeSamplingClient(theta=[0.0] * 258),  # uniform over its ids
            renderer=ToyChatRenderer(),
            params=SamplingParams(max_tokens=6, temperature=1.0, seed=seed),
        )
        return [a.text for a in completer.chat_samples([{"role": "user", "content": "x"}], 4)]

    assert answers(7) == answers(7)
    assert len(set(answers(7))) > 1
    assert answers(7) != answers(8)


def test_unparseable_turn_reports_parse_error():
    completer, _, _ = make([seq("Par", stop_reason="length")])
    result = completer.chat([{"role": "user", "content": "x"}])
    assert result.text == "Par"
    assert result.finish_reason == PARSE_ERROR


def test_length_stop_reason_is_passed_through_when_parsed():
    completer, _, _ = make([seq("ok", end=[EOT], stop_reason="length")])
    assert completer.chat([{"role": "user", "content": "x"}]).finish_reason == "length"


def test_llm_params_override_sampling_params():
    completer, sampling, _ = make(
        [seq("a", end=[EOT])], SamplingParams(max_tokens=16, temperature=1.0, top_k=5, seed=1)
    )
    completer.chat(
        [{"role": "user", "content": "x"}],
        LLMParams(max_tokens=3, temperature=0.0, top_p=0.5, seed=9),
    )
    params = sampling.calls[0][2]
    assert (params.max_tokens, params.temperature, params.top_p, params.seed) == (3, 0.0, 0.5, 9)
    assert params.top_k == 5  # not an LLMParams field: kept
    assert completer.params.max_tokens == 16  # the completer's own settings are unchanged


def test_string_stops_merge_without_duplicates():
    renderer = ToyChatRenderer(stops=["</s>", "\n\n"])
    completer, sampling, _ = make(
        [seq("a")], SamplingParams(stop=["\n\n", "###"]), renderer=renderer
    )
    assert completer.params.stop == ("\n\n", "###", "</s>")
    completer.chat([{"role": "user", "content": "x"}], LLMParams(stop=("END",)))
    assert sampling.calls[0][2].stop == ("\n\n", "###", "</s>", "END")


def test_mixing_string_and_token_stops_is_refused():
    with pytest.raises(ConfigurationError, match="mix strings and token ids"):
        make([], SamplingParams(stop=["\n"]))
    completer, _, _ = make([seq("a")])
    with pytest.raises(ConfigurationError, match="mix strings and token ids"):
        completer.chat([{"role": "user", "content": "x"}], LLMParams(stop=("END",)))


def test_complete_encodes_plain_text_and_strips_the_final_stop_token():
    completer, sampling, _ = make([seq(" upon a time", end=[EOS])])
    result = completer.complete("Once <eot>")
    prompt = sampling.calls[0][0]
    # Special-token text in a plain prompt stays text: no control token is injected.
    assert EOT not in prompt.to_ints()
    assert prompt.to_ints() == TOK.encode("Once <eot>", allow_special=False)
    assert result == Completion(
        text=" upon a time", finish_reason="stop", prompt_tokens=10, completion_tokens=13
    )


def test_complete_strips_a_final_string_stop():
    renderer = ToyChatRenderer(stops=["\n"])
    completer, _, _ = make([seq("42\n")], SamplingParams(), renderer=renderer)
    assert completer.complete("6*7=").text == "42"


def test_complete_keeps_text_cut_by_length():
    completer, _, _ = make([seq("abc", stop_reason="length")])
    result = completer.complete("x")
    assert (result.text, result.finish_reason) == ("abc", "length")


def test_content_parts_are_joined():
    class PartsRenderer(ToyChatRenderer):
        def parse_response(self, tokens):
            return {"role": "assistant", "content": [{"type": "text", "text": "a"}, "x"]}, True

    completer, _, _ = make([seq("a")], renderer=PartsRenderer())
    assert completer.chat([{"role": "user", "content": "x"}]).text == "a"


def test_sampling_failure_is_an_llm_client_error():
    sampling = FakeSamplingClient(fail_with=SamplingClientError("out of memory"))
    completer = SamplingCompleter(
        sampling=sampling, renderer=ToyChatRenderer(), params=SamplingParams()
    )
    with pytest.raises(LLMClientError, match="sampling failed: out of memory") as info:
        completer.chat([{"role": "user", "content": "x"}])
    assert isinstance(info.value.__cause__, SamplingClientError)
