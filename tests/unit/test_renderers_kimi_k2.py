"""Kimi K2 renderer: text parity with the Kimi-K2-Thinking template (no tools).

No clean offline Kimi vocabulary exists (REPORT §1), so parity is on rendered text:
the vendored template is rendered with transformers' ``render_jinja_template``, and
token ids are compared under a byte-level tokenizer that registers Kimi's special tokens.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from test_renderers_parity import CASES, REFERENCE, random_conversation

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.renderers import get_renderer, renderer_for_model
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.renderers.kimi_k2 import KimiK2Renderer
from crucible_train.errors import ConfigurationError, InvalidDataError

TEMPLATE = REFERENCE / "kimi_k2_thinking_llamacpp.jinja"
N_RANDOM = 60


def _renderer() -> Renderer:
    tok = ByteLevelTokenizer(special_tokens=list(KimiK2Renderer.special_token_texts))
    return get_renderer("kimi_k2", tok)


def _template_text(messages: list[dict[str, Any]], *, generation: bool) -> str:
    utils = pytest.importorskip("transformers.utils.chat_template_utils")
    out = utils.render_jinja_template(
        conversations=[messages],
        chat_template=TEMPLATE.read_text(encoding="utf-8"),
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


def test_refuses_tools_and_images() -> None:
    renderer = _renderer()
    with pytest.raises(InvalidDataError, match="tools"):
        renderer.build_generation_prompt([{"role": "user", "content": "x"}], tools=[{"name": "f"}])
    with pytest.raises(InvalidDataError, match="tool"):
        renderer.build_generation_prompt([{"role": "tool", "content": "x"}])
    image = {"type": "image", "image": b"x", "expected_tokens": 1}
    with pytest.raises(InvalidDataError, match="image"):
        renderer.build_generation_prompt([{"role": "user", "content": [image]}])


def test_model_lookup() -> None:
    tok = ByteLevelTokenizer(special_tokens=list(KimiK2Renderer.special_token_texts))
    assert renderer_for_model("moonshotai/Kimi-K2-Thinking", tok).name == "kimi_k2"
    assert renderer_for_model("MOONSHOTAI/KIMI-K2-THINKING", tok).name == "kimi_k2"
    with pytest.raises(ConfigurationError):
        renderer_for_model("moonshotai/Kimi-K2-Instruct", tok)
