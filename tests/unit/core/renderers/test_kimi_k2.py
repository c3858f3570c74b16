"""Kimi K2 renderer: text parity with the Kimi-K2-Thinking template, with and without tools.

No clean offline Kimi vocabulary exists (REPORT §1), so parity is on rendered text:
the template is rendered with transformers' ``render_jinja_template``, and token ids
are compared under a byte-level tokenizer that registers Kimi's special tokens.

Without tools the vendored llama.cpp copy is used as is. With tools it cannot render
(its counter queue calls ``list.append``, which transformers' sandbox rejects), so tool
conversations use ``tests/data/kimi_k2_thinking_hf_tool_ids.jinja``: the same file with
only the HF tool-id logic restored (``formatted_id = tool_call['id']`` and
``tool_call_id = message.tool_call_id``, as SOURCES.md records); its header comment
lists the changes line by line.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.renderers import get_renderer, renderer_for_model
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.renderers.kimi_k2 import KimiK2Renderer
from crucible_train.errors import ConfigurationError, InvalidDataError

from renderer_cases import CASES
from renderer_parity import REFERENCE, WEATHER_TOOL, random_conversation, random_text

TEMPLATE = REFERENCE / "kimi_k2_thinking_llamacpp.jinja"
HF_TOOLS_TEMPLATE = Path(__file__).parents[3] / "data" / "kimi_k2_thinking_hf_tool_ids.jinja"
N_RANDOM = 60


def _renderer() -> Renderer:
    tok = ByteLevelTokenizer(special_tokens=list(KimiK2Renderer.special_token_texts))
    return get_renderer("kimi_k2", tok)


def _template_text(
    messages: list[dict[str, Any]],
    *,
    generation: bool,
    tools: list[dict[str, Any]] | None = None,
    template: Path = TEMPLATE,
) -> str:
    utils = pytest.importorskip("transformers.utils.chat_template_utils")
    out = utils.render_jinja_template(
        conversations=[messages],
        tools=tools,
        chat_template=template.read_text(encoding="utf-8"),
        add_generation_prompt=generation,
        bos_token="[BOS]",
        eos_token="[EOS]",
    )
    rendered = out[0] if isinstance(out, tuple) else out
    return str(rendered[0] if isinstance(rendered, list) else rendered)


def _hf(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as the template reads them (``reasoning_content``, no alias)."""
    out = []
    for m in messages:
        m2 = {k: v for k, v in m.items() if k != "thinking"}
        if "thinking" in m:
            m2["reasoning_content"] = m["thinking"]
        out.append(m2)
    return out


def test_reference_cases_without_tools_match_text() -> None:
    renderer = _renderer()
    data = json.loads((REFERENCE / "rendered/kimi_k2_thinking_llamacpp.json").read_text("utf-8"))
    checked = 0
    for ref in data["results"]:
        if ref["tools"] or ref["case"].startswith("tools"):
            continue
        messages, generation = CASES[ref["case"]]
        assert renderer.render_text(messages, generation=generation) == ref["text"]
        assert _template_text(_hf(messages), generation=generation) == ref["text"]
        checked += 1
    assert checked == 5


def test_random_conversations_match_the_template() -> None:
    renderer = _renderer()
    tok = renderer.tokenizer
    rng = random.Random("renderers-kimi_k2")
    with_reasoning = 0
    for k in range(N_RANDOM):
        messages = random_conversation(rng, tools=False, reasoning=True, max_calls=1)
        if k % 2:  # supervised shape: ends in an assistant answer
            answer: dict[str, Any] = {"role": "assistant", "content": "Done."}
            if rng.random() < 0.5:
                answer["reasoning_content"] = "Because."
            messages.append(answer)
        generation = not k % 2
        text = _template_text(messages, generation=generation)
        assert renderer.render_text(messages, generation=generation) == text, messages
        if generation:
            ours = renderer.build_generation_prompt(messages).to_ints()
        else:
            ours = renderer.build_supervised_example(messages, "all_tokens")[0].to_ints()
        assert ours == tok.encode(text, allow_special=True), messages
        with_reasoning += bool(re.search(r"<think>(?!</think>)", text))
    assert with_reasoning > 0


def test_untrained_prefix_is_the_generation_prompt() -> None:
    renderer = _renderer()
    rng = random.Random("prefix-kimi_k2")
    for _ in range(40):
        conv = random_conversation(rng, tools=False, reasoning=True, max_calls=1)
        conv.append({"role": "assistant", "content": "Yes.", "reasoning_content": "ok"})
        prompt = renderer.build_generation_prompt(conv[:-1]).to_ints()
        model_input, weights = renderer.build_supervised_example(conv)
        tokens = model_input.to_ints()
        assert tokens[: len(prompt)] == prompt
        assert not weights[: len(prompt)].any()
        assert weights[len(prompt) :].all()
        assert tokens[-1] == renderer.get_stop_sequences()[0]


def test_parse_response_round_trips() -> None:
    renderer = _renderer()
    for message in [
        {"role": "assistant", "content": "It is 4.", "reasoning_content": "2+2"},
        {"role": "assistant", "content": "Plain."},
    ]:
        conv = [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "2+2?"},
            message,
        ]
        model_input, weights = renderer.build_supervised_example(conv)
        sampled = [t for t, w in zip(model_input.to_ints(), weights, strict=True) if w > 0]
        assert renderer.parse_response(sampled) == (message, True)
    tok = renderer.tokenizer
    stop = renderer.get_stop_sequences()[0]
    bad = [*tok.encode("<think>unclosed", allow_special=True), stop]
    assert renderer.parse_response(bad)[1] is False
    assert renderer.parse_response(tok.encode("no stop", allow_special=True))[1] is False


def test_refuses_images() -> None:
    renderer = _renderer()
    image = {"type": "image", "image": b"x", "expected_tokens": 1}
    with pytest.raises(InvalidDataError, match="image"):
        renderer.build_generation_prompt([{"role": "user", "content": [image]}])


# --- tools ---------------------------------------------------------------------------------


def _kimi_tool_conversation(rng: random.Random, *, supervised: bool) -> list[dict[str, Any]]:
    """A random tool conversation; half use Kimi's native ``functions.<name>:<n>`` ids."""
    messages = random_conversation(rng, tools=True, reasoning=True, max_calls=3)
    native = rng.random() < 0.5
    count = 0
    ids: dict[str, str] = {}
    for m in messages:
        for call in m.get("tool_calls", ()):
            new_id = f"functions.get_weather:{count}" if native else f"call_{count}"
            ids[call["id"]] = call["id"] = new_id
            count += 1
        if m["role"] == "tool":
            m["tool_call_id"] = ids[m["tool_call_id"]]
            if rng.random() < 0.5:
                m["name"] = "get_weather"
    if supervised:
        answer: dict[str, Any] = {"role": "assistant", "content": random_text(rng)}
        if rng.random() < 0.5:
            answer["reasoning_content"] = random_text(rng) or "so"
        if rng.random() < 0.3:
            call = {
                "type": "function",
                "id": f"functions.get_weather:{count}",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
            answer["tool_calls"] = [call]
        messages.append(answer)
    return messages


def test_random_tool_conversations_match_the_reconstructed_template() -> None:
    renderer = _renderer()
    tok = renderer.tokenizer
    rng = random.Random("renderers-kimi_k2-tools")
    calls = several = results = consecutive = 0
    for k in range(N_RANDOM):
        generation = not k % 2
        messages = _kimi_tool_conversation(rng, supervised=not generation)
        tools = [WEATHER_TOOL]
        text = _template_text(
            _hf(messages), generation=generation, tools=tools, template=HF_TOOLS_TEMPLATE
        )
        assert renderer.render_text(messages, tools, generation=generation) == text, messages
        if generation:
            ours = renderer.build_generation_prompt(messages, tools=tools).to_ints()
        else:
            ours = renderer.build_supervised_example(messages, "all_tokens", tools)[0].to_ints()
        assert ours == tok.encode(text, allow_special=True), messages
        calls += any(m.get("tool_calls") for m in messages)
        several += any(len(m.get("tool_calls", ())) > 1 for m in messages)
        results += any(m["role"] == "tool" for m in messages)
        consecutive += any(
            a["role"] == b["role"] == "tool" for a, b in itertools.pairwise(messages)
        )
    assert min(calls, several, results, consecutive) > 5, (calls, several, results, consecutive)


def test_tool_turns_render_the_kimi_format() -> None:
    renderer = _renderer()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "use the tool",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            ],
        },
        {"role": "tool", "content": "sunny", "name": "get_weather"},
        {"role": "tool", "content": "done"},
    ]
    text = renderer.render_text(messages, [WEATHER_TOOL], generation=True)
    assert text.startswith("<|im_system|>tool_declare<|im_middle|>[{")
    assert (
        "<|im_assistant|>assistant<|im_middle|><think>use the tool</think>Checking."
        "<|tool_calls_section_begin|>"
        "<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{}<|tool_call_end|>"
        '<|tool_call_begin|>functions.f:1<|tool_call_argument_begin|>{"a": 1}<|tool_call_end|>'
        "<|tool_calls_section_end|><|im_end|>"
        "<|im_system|>get_weather<|im_middle|>## Return of functions.get_weather:0\nsunny<|im_end|>"
        "<|im_system|>tool<|im_middle|>## Return of functions.f:1\ndone<|im_end|>"
        "<|im_assistant|>assistant<|im_middle|>"
    ) in text


def test_tool_calls_round_trip_through_parse_response() -> None:
    renderer = _renderer()
    rng = random.Random("kimi_k2-tools-roundtrip")
    checked = 0
    for _ in range(40):
        conv = _kimi_tool_conversation(rng, supervised=True)
        last = conv[-1]
        model_input, weights = renderer.build_supervised_example(conv, tools=[WEATHER_TOOL])
        sampled = [t for t, w in zip(model_input.to_ints(), weights, strict=True) if w > 0]
        parsed, ok = renderer.parse_response(sampled)
        assert ok, conv
        expected: dict[str, Any] = {"role": "assistant", "content": last["content"]}
        if last.get("reasoning_content"):  # a trained final turn keeps its reasoning
            expected["reasoning_content"] = last["reasoning_content"]
        if last.get("tool_calls"):
            expected["tool_calls"] = last["tool_calls"]
        assert parsed == expected
        checked += bool(last.get("tool_calls"))
    assert checked > 3


def test_malformed_tool_sections_give_ok_false() -> None:
    renderer = _renderer()
    tok = renderer.tokenizer
    stop = renderer.get_stop_sequences()[0]
    call = "<|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|>"
    good = f"<think></think><|tool_calls_section_begin|>{call}<|tool_calls_section_end|>"
    parsed, ok = renderer.parse_response([*tok.encode(good, allow_special=True), stop])
    assert ok
    assert parsed["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    for bad in [
        good.replace("{}", "{bad"),  # arguments are not JSON
        good.replace("{}", "[1]"),  # not a JSON object
        good.replace("<|tool_calls_section_end|>", ""),  # section never closed
        good.replace("functions.f:0", "f"),  # not a Kimi call id
        good.replace(call, ""),  # empty section
        good.replace(call, call + "junk"),  # text between calls
        good + "after",  # text after the section
        "<think></think>text<|tool_call_end|>",  # stray marker
        good.replace("<|tool_call_end|>", ""),  # call never closed
    ]:
        message, ok = renderer.parse_response([*tok.encode(bad, allow_special=True), stop])
        assert ok is False, bad
        assert message["role"] == "assistant"


def test_parse_response_never_raises() -> None:
    renderer = _renderer()
    vocab = renderer.tokenizer.vocab_size
    specials = list(renderer.tokenizer.special_tokens.values())
    rng = random.Random("kimi_k2-parse-fuzz")
    for _ in range(400):
        tokens = [
            rng.choice(specials) if rng.random() < 0.4 else rng.randrange(0, vocab + 5)
            for _ in range(rng.randint(0, 30))
        ]
        message, ok = renderer.parse_response(tokens)
        assert message["role"] == "assistant"
        assert isinstance(ok, bool)


def test_model_lookup() -> None:
    tok = ByteLevelTokenizer(special_tokens=list(KimiK2Renderer.special_token_texts))
    assert renderer_for_model("moonshotai/Kimi-K2-Thinking", tok).name == "kimi_k2"
    assert renderer_for_model("MOONSHOTAI/KIMI-K2-THINKING", tok).name == "kimi_k2"
    with pytest.raises(ConfigurationError):
        renderer_for_model("moonshotai/Kimi-K2-Instruct", tok)
