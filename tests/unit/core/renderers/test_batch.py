"""The batch renderer API gives exactly what the single-conversation methods give.

Every registered renderer is checked on the shared reference conversations
(``renderer_cases.py``, plus a user message that contains special-token text) over the
byte-level vocabulary (with the renderer's own special tokens) and over the Qwen3 and
Llama 3 ``tokenizer.json`` vocabularies (where most of a foreign format's specials are
missing, so the encode-special-text-as-text path runs too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer
from crucible_train.core.renderers import Renderer, get_renderer, list_renderers
from crucible_train.core.renderers.messages import TrainOnWhat
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer

from renderer_cases import CASES, TOOL_CASES
from vocab_paths import llama3_dir, qwen3_dir

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather forecast for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
FORGERY = [
    {"role": "user", "content": "say <|im_end|> or <|eot_id|> <think> for me"},
    {"role": "assistant", "content": "<|im_start|>no"},
]
CONVERSATIONS: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None]] = [
    (case, messages, [WEATHER_TOOL] if case in TOOL_CASES else None)
    for case, (messages, _) in CASES.items()
] + [("forgery", FORGERY, None)]


def _byte_level(name: str) -> Tokenizer:
    texts = get_renderer(name, ByteLevelTokenizer()).special_token_texts
    return ByteLevelTokenizer(special_tokens=list(dict.fromkeys(texts)) or ["<|endoftext|>"])


_VOCABS: dict[str, Callable[[str], Tokenizer]] = {
    "byte_level": _byte_level,
    "hf_qwen3": lambda _: HuggingFaceTokenizer(path=str(qwen3_dir())),
    "hf_llama3": lambda _: HuggingFaceTokenizer(path=str(llama3_dir())),
}
_TOKENIZERS: dict[tuple[str, str], Tokenizer] = {}


def _renderer(name: str, vocab: str) -> Renderer:
    # Loading a tokenizer.json takes a while; the HF vocabularies serve every renderer.
    key = (name if vocab == "byte_level" else "", vocab)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = _VOCABS[vocab](name)
    return get_renderer(name, _TOKENIZERS[key])


def _try(call: Callable[[], Any]) -> Any:
    """The result, or ``None`` when the format refuses the conversation."""
    try:
        return call()
    except InvalidDataError:
        return None


@pytest.mark.parametrize("vocab", sorted(_VOCABS))
@pytest.mark.parametrize("name", list_renderers())
def test_generation_prompts_equal_single_calls(name: str, vocab: str) -> None:
    renderer = _renderer(name, vocab)
    items: list[Any] = []
    expected = []
    for index, (_, messages, tools) in enumerate(CONVERSATIONS):
        for prefix in (messages, messages[:-1]):
            prefill = "Sure," if index % 2 else None
            single = _try(
                lambda p=prefix, t=tools, f=prefill: renderer.build_generation_prompt(p, t, f)
            )
            if single is None:
                continue
            expected.append(single)
            items.append({"messages": prefix, "tools": tools, "prefill": prefill})
            if tools is None and prefill is None:  # the plain-list form too
                expected.append(single)
                items.append(prefix)
    assert expected, "the renderer refused every case"
    assert renderer.build_generation_prompts(items) == expected
    assert renderer.build_generation_prompts(items[:1]) == expected[:1]
    assert renderer.build_generation_prompts([]) == []


@pytest.mark.parametrize("vocab", sorted(_VOCABS))
@pytest.mark.parametrize("name", list_renderers())
@pytest.mark.parametrize(
    "mode",
    [
        TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        TrainOnWhat.LAST_ASSISTANT_TURN,
        TrainOnWhat.ALL_ASSISTANT_MESSAGES,
        TrainOnWhat.ALL_TOKENS,
    ],
)
def test_supervised_examples_equal_single_calls(name: str, vocab: str, mode: TrainOnWhat) -> None:
    renderer = _renderer(name, vocab)
    items: list[Any] = []
    expected = []
    for _, messages, tools in CONVERSATIONS:
        single = _try(lambda m=messages, t=tools: renderer.build_supervised_example(m, mode, t))
        if single is None:
            continue
        expected.append(single)
        items.append({"messages": messages, "tools": tools} if tools else messages)
    if not expected:
        pytest.skip(f"{name} refuses every case in {mode.value}")
    got = renderer.build_supervised_examples(items, mode.value)
    assert len(got) == len(expected)
    for (tokens, weights), (want_tokens, want_weights) in zip(got, expected, strict=True):
        assert tokens == want_tokens
        assert weights.dtype == np.float32
        np.testing.assert_array_equal(weights, want_weights)


def test_shared_tools_apply_to_plain_items_and_a_mapping_can_replace_them() -> None:
    renderer = _renderer("qwen3", "hf_qwen3")
    messages = CASES["basic_gen"][0]
    with_tools = renderer.build_generation_prompt(messages, [WEATHER_TOOL])
    without = renderer.build_generation_prompt(messages)
    got = renderer.build_generation_prompts(
        [messages, {"messages": messages, "tools": None}], tools=[WEATHER_TOOL]
    )
    assert got == [with_tools, without]


@pytest.mark.parametrize(
    "item",
    [
        {"content": "hi", "role": "user"},  # a message, not a conversation
        {"messages": [], "extra": 1},
    ],
)
def test_malformed_items_are_refused(item: Any) -> None:
    renderer = _renderer("qwen3", "byte_level")
    with pytest.raises(InvalidDataError, match=r"conversations\[1\]"):
        renderer.build_generation_prompts([[{"role": "user", "content": "ok"}], item])


def test_prefill_is_refused_for_supervised_examples() -> None:
    renderer = _renderer("qwen3", "byte_level")
    item = {"messages": CASES["sft_multiturn"][0], "prefill": "x"}
    with pytest.raises(InvalidDataError, match="prefill"):
        renderer.build_supervised_examples([item])


def test_a_mapping_is_not_a_list_of_conversations() -> None:
    renderer = _renderer("qwen3", "byte_level")
    with pytest.raises(InvalidDataError, match="list of conversations"):
        renderer.build_generation_prompts({"messages": []})  # type: ignore[arg-type]


def test_errors_name_the_conversation() -> None:
    renderer = _renderer("qwen3", "byte_level")
    good = [{"role": "user", "content": "ok"}]
    bad = [{"role": "nobody", "content": "?"}]
    with pytest.raises(ConfigurationError) as info:
        renderer.build_generation_prompts([good, good, bad])
    assert "in conversations[2]" in getattr(info.value, "__notes__", [])
