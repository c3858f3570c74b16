"""Bad input, across every registered renderer: typed errors that say what is wrong and
how to fix it, and ``parse_response`` that reports malformed output instead of raising.

Renderers run over a byte-level vocabulary holding their special tokens, so no real
vocabulary is needed. Cases marked ``xfail(strict=True, reason="gap: ...")`` are known
gaps in renderer files this suite does not own; each reason says what should happen.
"""

from __future__ import annotations

from typing import Any

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.renderers import VALID_ROLES, Renderer, get_renderer, list_renderers
from crucible_train.errors import ConfigurationError, InvalidDataError

NAMES = list_renderers()
VISION = {"qwen3_vl", "qwen3_vl_instruct"}
#: Renderers whose format has no tool calls (they refuse tools when rendering).
NO_TOOL_FORMAT = {"role_colon"}
#: Renderers that never show reasoning in a trained final turn after a user message.
NO_REASONING_TARGET = {
    "deepseekv3",
    "deepseekv3_0324",
    "llama3",
    "qwen3_disable_thinking",
    "qwen3_instruct",
    "qwen3_vl_instruct",
    "role_colon",
}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)
CALL = {"type": "function", "id": "call_1", "function": {"name": "f", "arguments": '{"a": 1}'}}


def _renderer(name: str) -> Renderer:
    probe = get_renderer(name, ByteLevelTokenizer(special_tokens=()))
    specials = list(probe.special_token_texts)
    return get_renderer(name, ByteLevelTokenizer(special_tokens=specials))


def _gap(name: str, gaps: dict[str, str]) -> Any:
    """``name`` as a parameter, strictly expected to fail when it is a listed gap."""
    if name in gaps:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=gaps[name]))
    return name


# --- unknown role --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_unknown_role_is_a_configuration_error_listing_valid_roles(name: str) -> None:
    renderer = _renderer(name)
    conv = [{"role": "user", "content": "q"}, {"role": "wizard", "content": "x"}]
    valid = "valid roles: " + ", ".join(VALID_ROLES)
    with pytest.raises(ConfigurationError, match=r"messages\[1\]\.role is 'wizard'") as info:
        renderer.build_generation_prompt(conv)
    assert valid in str(info.value)
    with pytest.raises(ConfigurationError, match=valid):
        renderer.build_supervised_example([*conv, {"role": "assistant", "content": "a"}])


# --- missing content -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("role", ["system", "user", "tool"])
def test_message_without_content_is_refused(name: str, role: str) -> None:
    """Every family needs the text of system, user and tool messages ("" is fine)."""
    renderer = _renderer(name)
    conv: list[dict[str, Any]] = [{"role": "user", "content": "q"}]
    if role == "tool":
        conv.append({"role": "assistant", "content": "", "tool_calls": [CALL]})
    conv.append({"role": role})
    with pytest.raises(InvalidDataError, match=rf"messages\[{len(conv) - 1}\] .*without 'content'"):
        renderer.build_generation_prompt(conv)


@pytest.mark.parametrize("name", NAMES)
def test_assistant_without_content_or_tool_calls_is_refused(name: str) -> None:
    renderer = _renderer(name)
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]
    with pytest.raises(InvalidDataError, match="neither 'content' nor 'tool_calls'"):
        renderer.build_supervised_example(conv)


# --- tool results that answer no call ------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_tool_call_id_matching_no_earlier_call_is_refused(name: str) -> None:
    """Checked once for every format at the edge (no vendored template prints ids, but a
    mismatch means the conversation was assembled wrongly)."""
    renderer = _renderer(name)
    conv = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_9", "content": "r"},
    ]
    with pytest.raises(InvalidDataError, match=r"messages\[2\]\.tool_call_id is 'call_9'") as info:
        renderer.build_generation_prompt(conv)
    assert "call_1" in str(info.value)


@pytest.mark.parametrize("name", sorted(set(NAMES) - NO_TOOL_FORMAT))
def test_tool_call_ids_cannot_be_checked_when_calls_carry_none(name: str) -> None:
    renderer = _renderer(name)
    call = {k: v for k, v in CALL.items() if k != "id"}
    conv = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "anything", "content": "r"},
    ]
    assert renderer.build_generation_prompt(conv).to_ints()


# --- reasoning as a training target where the format cannot show it -----------------------

_REASONING_GAPS: dict[str, str] = {}


@pytest.mark.parametrize("name", [_gap(n, _REASONING_GAPS) for n in sorted(NO_REASONING_TARGET)])
def test_reasoning_in_a_trained_final_turn_is_refused_without_thinking(name: str) -> None:
    renderer = _renderer(name)
    conv = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "because"},
    ]
    with pytest.raises(InvalidDataError, match="reasoning"):
        renderer.build_supervised_example(conv)


_KIMI_HISTORY_GAP: dict[str, str] = {}


@pytest.mark.parametrize(
    "name", [_gap(n, _KIMI_HISTORY_GAP) for n in sorted(set(NAMES) - NO_REASONING_TARGET)]
)
def test_thinking_renderers_train_reasoning_after_a_user_message(name: str) -> None:
    renderer = _renderer(name)
    conv = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "because"},
    ]
    model_input, weights = renderer.build_supervised_example(conv)
    trained = [t for t, w in zip(model_input.to_ints(), weights, strict=True) if w > 0]
    assert "because" in renderer.tokenizer.decode(trained)


# --- images given to text-only renderers ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(NAMES) - VISION))
def test_images_are_refused_by_text_only_renderers(name: str) -> None:
    renderer = _renderer(name)
    image = {"type": "image", "image": PNG, "expected_tokens": 4}
    conv = [{"role": "user", "content": [{"type": "text", "text": "look"}, image]}]
    with pytest.raises(InvalidDataError, match=r"image parts.*text-only.*qwen3_vl"):
        renderer.build_generation_prompt(conv)
    with pytest.raises(InvalidDataError, match="image parts"):
        renderer.build_supervised_example([*conv, {"role": "assistant", "content": "a"}])


# --- malformed tool-call JSON in sampled output --------------------------------------------

_PARSE_GAPS: dict[str, str] = {}


@pytest.mark.parametrize(
    "name", [_gap(n, _PARSE_GAPS) for n in sorted(set(NAMES) - NO_TOOL_FORMAT)]
)
def test_malformed_tool_call_json_parses_as_not_ok(name: str) -> None:
    """A rendered tool-call turn with its JSON arguments cut short never parses cleanly."""
    renderer = _renderer(name)
    # Without an id: Kimi parses only its native ``functions.{name}:{n}`` ids.
    call = {k: v for k, v in CALL.items() if k != "id"}
    conv = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
    ]
    model_input, weights = renderer.build_supervised_example(conv)
    sampled = [t for t, w in zip(model_input.to_ints(), weights, strict=True) if w > 0]
    good, ok = renderer.parse_response(sampled)
    assert ok, good
    text = renderer.tokenizer.decode(sampled)
    args = next(a for a in ('{"a": 1}', '{"a":1}') if a in text)
    for broken in ('{"a": 1', '{"a": }', "[1, 2]", "not json"):
        tokens = renderer.tokenizer.encode(text.replace(args, broken, 1), allow_special=True)
        message, ok = renderer.parse_response(tokens)
        assert ok is False, (broken, message)
        assert message["role"] == "assistant"
        assert isinstance(message["content"], str)


@pytest.mark.parametrize("name", NAMES)
def test_parse_response_never_raises_on_garbage(name: str) -> None:
    renderer = _renderer(name)
    vocab = renderer.tokenizer.vocab_size
    for tokens in ([], [-1], [vocab + 7], [0xFF, 0xFE], list(range(256, vocab))):
        message, ok = renderer.parse_response(tokens)
        assert message["role"] == "assistant"
        assert isinstance(message["content"], str)
        assert isinstance(ok, bool)
