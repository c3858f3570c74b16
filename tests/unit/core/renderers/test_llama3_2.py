"""Llama 3.2: ``Llama3Renderer(date_string=...)`` against ``llama3_2.jinja``.

The 3.2 template writes today's date (``strftime_now``) unless ``date_string`` is
passed. Random generation prompts are checked token for token in
``test_parity.py`` (``HF_SETUPS["llama3_2"]``, date pinned); here: the
reference renderings (rendered with ``strftime_now`` pinned to 2025-06-01), supervised
examples, today's date and the unchanged 3.1/3.3 default.
"""

from __future__ import annotations

import datetime
import json
import random
from typing import Any

import pytest

from crucible_train.core.renderers import Llama3Renderer, get_renderer
from crucible_train.errors import InvalidDataError

from renderer_cases import CASES
from renderer_parity import (
    LLAMA3_2_DATE,
    REFERENCE,
    WEATHER_TOOL,
    _port,
    hf_messages,
    hf_tokenizer,
    random_conversation,
    random_text,
)

N_RANDOM = 60


def _tools_for(case: str) -> list[dict[str, Any]] | None:
    return [WEATHER_TOOL] if case.startswith("tools") else None


def test_default_date_is_the_3_1_and_3_3_date() -> None:
    renderer = get_renderer("llama3", _port("llama3"))
    assert isinstance(renderer, Llama3Renderer)
    assert renderer.date_string == "26 Jul 2024"
    assert "Today Date: 26 Jul 2024\n" in renderer.render_text([{"role": "user", "content": "x"}])


def test_reference_renderings_match_text_and_ids() -> None:
    renderer = Llama3Renderer(_port("llama3"), date_string="01 Jun 2025")
    data = json.loads((REFERENCE / "rendered/llama3_2.json").read_text("utf-8"))
    assert len(data["results"]) == 7
    for ref in data["results"]:
        messages, generation = CASES[ref["case"]]
        tools = _tools_for(ref["case"])
        if generation:
            tokens = renderer.build_generation_prompt(messages, tools=tools).to_ints()
        elif messages[-1].get("thinking") or messages[-1].get("reasoning_content"):
            # The template drops the trained turn's reasoning; we refuse to train it.
            with pytest.raises(InvalidDataError, match="reasoning"):
                renderer.build_supervised_example(messages, tools=tools)
            continue
        else:
            tokens = renderer.build_supervised_example(messages, tools=tools)[0].to_ints()
        assert renderer.tokenizer.decode(tokens) == ref["text"], ref["case"]
        assert tokens == ref["token_ids"], ref["case"]


def test_random_supervised_examples_match_the_template() -> None:
    hf = hf_tokenizer("llama3", "llama3_2.jinja")
    renderer = Llama3Renderer(_port("llama3"), date_string=LLAMA3_2_DATE)
    rng = random.Random("renderers-llama3_2-supervised")
    with_calls = 0
    for _ in range(N_RANDOM):
        use_tools = rng.random() < 0.4
        messages = random_conversation(rng, tools=use_tools, reasoning=False, max_calls=1)
        messages.append({"role": "assistant", "content": random_text(rng)})
        tools = [WEATHER_TOOL] if use_tools else None
        text = hf.apply_chat_template(
            hf_messages(messages),
            tools=tools,
            tokenize=False,
            add_generation_prompt=False,
            date_string=LLAMA3_2_DATE,
        )
        model_input, weights = renderer.build_supervised_example(messages, tools=tools)
        tokens = model_input.to_ints()
        assert renderer.tokenizer.decode(tokens) == text, messages
        assert tokens == hf.encode(text, add_special_tokens=False), messages
        assert weights[-1] == 1.0
        with_calls += any(m.get("tool_calls") for m in messages)
    assert with_calls > 5


def test_todays_date_matches_the_template_without_date_string() -> None:
    hf = hf_tokenizer("llama3", "llama3_2.jinja")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    for _ in range(2):  # retry once if the day changed between the two renders
        today = datetime.datetime.now().strftime("%d %b %Y")
        text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if f"Today Date: {today}\n" in text:
            break
    renderer = Llama3Renderer(_port("llama3"), date_string=today)
    assert renderer.render_text(messages, generation=True) == text
