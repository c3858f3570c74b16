"""Qwen3 Thinking-2507 renderer: parity with ``qwen3_thinking_2507.jinja``.

Generation prompts are checked token for token in ``test_parity.py``
(``HF_SETUPS["qwen3_thinking"]``); here: the reference renderings, supervised examples
on seeded random conversations, the untrained ``<think>\\n`` and parsing.

Deliberate differences of a supervised example from the template's
``add_generation_prompt=False`` rendering: it ends at its ``<|im_end|>`` (no final
``\\n``), and its tokens are encoded apart at the untrained/trained boundary, so the
prompt's ``\\n`` after ``<think>`` never merges with the trained text (under
``all_tokens`` there is no boundary and the ids equal the template's).
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from crucible_train.core.renderers import Renderer, TrainOnWhat
from crucible_train.errors import InvalidDataError

from renderer_cases import CASES
from renderer_parity import (
    REFERENCE,
    WEATHER_TOOL,
    _renderer,
    hf_messages,
    hf_tokenizer,
    random_conversation,
    random_text,
)

TEMPLATE = "qwen3_thinking_2507.jinja"
N_RANDOM = 60


def _renderer_() -> Renderer:
    return _renderer("qwen3_thinking")


def _tools_for(case: str) -> list[dict[str, Any]] | None:
    return [WEATHER_TOOL] if case.startswith("tools") else None


def test_reference_renderings_match_text_and_ids() -> None:
    renderer = _renderer_()
    data = json.loads((REFERENCE / "rendered/qwen3_thinking_2507.json").read_text("utf-8"))
    assert len(data["results"]) == 7
    for ref in data["results"]:
        messages, generation = CASES[ref["case"]]
        tools = _tools_for(ref["case"])
        if generation:
            tokens = renderer.build_generation_prompt(messages, tools=tools).to_ints()
            assert tokens == ref["token_ids"], ref["case"]
            continue
        # Under all_tokens nothing splits the encoding: the template's ids minus "\n".
        model_input, _ = renderer.build_supervised_example(messages, "all_tokens", tools=tools)
        assert ref["text"].endswith("<|im_end|>\n")
        assert renderer.render_text(messages, tools) == ref["text"][:-1], ref["case"]
        assert model_input.to_ints() == ref["token_ids"][:-1], ref["case"]


def _supervised_conversation(rng: random.Random, use_tools: bool) -> list[dict[str, Any]]:
    messages = random_conversation(rng, tools=use_tools, reasoning=True, max_calls=3)
    answer: dict[str, Any] = {"role": "assistant", "content": random_text(rng)}
    if rng.random() < 0.6:
        answer["reasoning_content"] = random_text(rng) or "hmm"
    return [*messages, answer]


def test_random_supervised_examples_match_the_template() -> None:
    hf = hf_tokenizer("qwen3", TEMPLATE)
    renderer = _renderer_()
    tok = renderer.tokenizer
    rng = random.Random("renderers-qwen3_thinking-supervised")
    with_calls = with_reasoning = split_differs = 0
    for _ in range(N_RANDOM):
        use_tools = rng.random() < 0.4
        messages = _supervised_conversation(rng, use_tools)
        tools = [WEATHER_TOOL] if use_tools else None
        text = hf.apply_chat_template(
            hf_messages(messages), tools=tools, tokenize=False, add_generation_prompt=False
        )
        assert text.endswith("<|im_end|>\n")
        expected_ids = hf.encode(text[:-1], add_special_tokens=False)
        # all_tokens: one weight run, so the ids are the template's exactly.
        all_tokens, _ = renderer.build_supervised_example(messages, "all_tokens", tools=tools)
        assert all_tokens.to_ints() == expected_ids, messages
        # last_assistant_message: same text; untrained prefix == generation prompt.
        model_input, weights = renderer.build_supervised_example(messages, tools=tools)
        tokens = model_input.to_ints()
        assert tok.decode(tokens) == text[:-1], messages
        prompt = renderer.build_generation_prompt(messages[:-1], tools=tools).to_ints()
        assert tok.decode(prompt).endswith("<|im_start|>assistant\n<think>\n")
        assert tokens[: len(prompt)] == prompt
        assert not weights[: len(prompt)].any()
        assert weights[len(prompt) :].all()
        split_differs += tokens != expected_ids
        with_calls += any(m.get("tool_calls") for m in messages)
        with_reasoning += "reasoning_content" in messages[-1]
    assert with_calls > 5
    assert with_reasoning > 10
    assert split_differs > 0  # e.g. "<think>\n" + "\n</think>" vs one "\n\n" token


def test_think_opening_is_untrained_and_the_answer_is_trained() -> None:
    renderer = _renderer_()
    tok = renderer.tokenizer
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    for reasoning, trained_text in [
        ("r", "r\n</think>\n\na<|im_end|>"),
        (None, "\n</think>\n\na<|im_end|>"),
    ]:
        msgs = [conv[0], {**conv[1], "reasoning_content": reasoning}] if reasoning else conv
        for mode in (TrainOnWhat.LAST_ASSISTANT_MESSAGE, TrainOnWhat.ALL_ASSISTANT_MESSAGES):
            model_input, weights = renderer.build_supervised_example(msgs, mode)
            tokens = model_input.to_ints()
            trained = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
            assert tok.decode(trained) == trained_text
    model_input, weights = renderer.build_supervised_example(conv, "all_tokens")
    assert weights.all()


def test_history_turns_after_the_query_keep_reasoning_and_their_opening_is_untrained() -> None:
    renderer = _renderer_()
    conv: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "call it",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "Sunny.", "reasoning_content": "done"},
    ]
    model_input, weights = renderer.build_supervised_example(conv, "last_assistant_turn")
    tokens = model_input.to_ints()
    trained = renderer.tokenizer.decode([t for t, w in zip(tokens, weights, strict=True) if w])
    assert trained.startswith("call it\n</think>\n\n<tool_call>")
    assert "done\n</think>\n\nSunny." in trained
    assert "<think>" not in trained


def test_refuses_a_trained_turn_without_a_user_query() -> None:
    renderer = _renderer_()
    with pytest.raises(InvalidDataError, match="user message"):
        renderer.build_supervised_example(
            [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
        )


def test_parse_response_starts_inside_the_think_block() -> None:
    renderer = _renderer_()
    tok = renderer.tokenizer
    (stop,) = renderer.get_stop_sequences()
    assert isinstance(stop, int)

    def parse(text: str, *, end: bool = True) -> tuple[dict[str, Any], bool]:
        ids = tok.encode(text, allow_special=True)
        return renderer.parse_response([*ids, stop] if end else ids)

    assert parse("plan\n</think>\n\nAnswer.") == (
        {"role": "assistant", "content": "Answer.", "reasoning_content": "plan"},
        True,
    )
    assert parse("\n</think>\n\nAnswer.") == ({"role": "assistant", "content": "Answer."}, True)
    # A leading <think> (prompt built without it) is tolerated.
    assert parse("<think>\nplan\n</think>\n\nA")[0]["reasoning_content"] == "plan"
    call = '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>'
    message, ok = parse("go\n</think>\n\n" + call)
    assert ok
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    # Thinking never closed, nested <think>, no stop token, broken call JSON.
    assert parse("still thinking") == ({"role": "assistant", "content": "still thinking"}, False)
    assert parse("a<think>b</think>c")[1] is False
    assert parse("r\n</think>\n\nA", end=False)[1] is False
    assert parse("r\n</think>\n\n<tool_call>\n{bad\n</tool_call>")[1] is False


def test_weights_are_float32_and_cover_every_token() -> None:
    renderer = _renderer_()
    rng = random.Random("qwen3_thinking-weights")
    for _ in range(10):
        conv = _supervised_conversation(rng, rng.random() < 0.5)
        tools = [WEATHER_TOOL] if any(m.get("tool_calls") for m in conv) else None
        model_input, weights = renderer.build_supervised_example(conv, tools=tools)
        assert weights.dtype == np.float32
        assert len(weights) == len(model_input.to_ints())
