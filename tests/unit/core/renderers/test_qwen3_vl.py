"""Qwen3-VL renderers: text parity with the official templates, and image chunks.

Text-only conversations are checked against the offline reference renderings and
against transformers' ``apply_chat_template`` with the vendored VL templates (Qwen3
vocabulary, which holds the vision tokens).
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from crucible_train.core.renderers import get_renderer, renderer_for_model
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.renderers.qwen3_vl import image_chunk
from crucible_train.errors import InvalidDataError
from crucible_train.types import EncodedTextChunk, ImageChunk

from renderer_cases import CASES
from renderer_parity import (
    FAMILIES,
    N_RANDOM,
    REFERENCE,
    WEATHER_TOOL,
    _package_file,
    _port,
    _tools_for,
    hf_messages,
    random_conversation,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
TEMPLATES = {"qwen3_vl": "qwen3_vl_thinking", "qwen3_vl_instruct": "qwen3_vl_instruct"}


def _renderer(name: str) -> Renderer:
    return get_renderer(name, _port("qwen3"))


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_reference_cases_match_text_and_ids(name: str) -> None:
    renderer = _renderer(name)
    data = json.loads((REFERENCE / f"rendered/{TEMPLATES[name]}.json").read_text("utf-8"))
    results = [r for r in data["results"] if r["variant"] == "default"]
    assert len(results) == 7
    for ref in results:
        messages, generation = CASES[ref["case"]]
        assert ref["add_generation_prompt"] == generation
        tools = _tools_for(ref["case"])
        if generation:
            tokens = renderer.build_generation_prompt(messages, tools=tools).to_ints()
            assert renderer.render_text(messages, tools, generation=True) == ref["text"]
            assert tokens == ref["token_ids"], ref["case"]
        else:
            # An example ends at its stop token: the template's final "\n" is dropped.
            assert ref["text"].endswith("<|im_end|>\n")
            assert renderer.render_text(messages, tools) == ref["text"][:-1]
            if name == "qwen3_vl_instruct" and messages[-1].get("thinking"):
                # Instruct cannot show a reasoned target, so it refuses to train one.
                with pytest.raises(InvalidDataError, match="reasoning"):
                    renderer.build_supervised_example(messages, tools=tools)
                continue
            model_input, weights = renderer.build_supervised_example(messages, tools=tools)
            assert model_input.to_ints() == ref["token_ids"][:-1], ref["case"]
            assert len(weights) == len(ref["token_ids"]) - 1


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_random_generation_prompts_match_apply_chat_template(name: str) -> None:
    transformers = pytest.importorskip("transformers")
    info = FAMILIES["qwen3"]
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(_package_file(*info["file"])),
        chat_template=(REFERENCE / f"{TEMPLATES[name]}.jinja").read_text(encoding="utf-8"),
        **info["hf_kwargs"],
    )
    renderer = _renderer(name)
    rng = random.Random(f"renderers-{name}")
    checked = with_calls = 0
    for _ in range(N_RANDOM):
        use_tools = rng.random() < 0.4
        messages = random_conversation(
            rng, tools=use_tools, reasoning=name == "qwen3_vl", max_calls=3
        )
        tools = [WEATHER_TOOL] if use_tools else None
        text = hf.apply_chat_template(
            hf_messages(messages), tools=tools, tokenize=False, add_generation_prompt=True
        )
        ours = renderer.build_generation_prompt(messages, tools=tools).to_ints()
        assert renderer.tokenizer.decode(ours) == text, messages
        assert ours == hf.encode(text, add_special_tokens=False), messages
        checked += 1
        with_calls += any(m.get("tool_calls") for m in messages)
    assert checked == N_RANDOM >= 50
    assert with_calls > 5


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_image_parts_become_image_chunks(name: str, tmp_path: Any) -> None:
    renderer = _renderer(name)
    jpeg = tmp_path / "cat.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0rest")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare "},
                {"type": "image", "image": PNG, "expected_tokens": 4},
                {"type": "text", "text": " and "},
                {"type": "image", "image": str(jpeg), "expected_tokens": 3},
            ],
        },
        {"role": "assistant", "content": "Same cat."},
    ]
    if name == "qwen3_vl":
        messages[-1]["reasoning_content"] = "look"
    text = renderer.render_text(messages)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    prompt = renderer.build_generation_prompt(messages[:1])
    kinds = [type(c).__name__ for c in prompt.chunks]
    text_kind, image_kind = "EncodedTextChunk", "ImageChunk"
    assert kinds == [text_kind, image_kind, text_kind, image_kind, text_kind]
    special = renderer.tokenizer.special_tokens
    first, img1, mid, img2, _ = prompt.chunks
    assert isinstance(first, EncodedTextChunk)
    assert isinstance(mid, EncodedTextChunk)
    assert first.tokens[-1] == special["<|vision_start|>"]
    assert mid.tokens[0] == special["<|vision_end|>"]
    assert mid.tokens[-1] == special["<|vision_start|>"]
    assert isinstance(img1, ImageChunk)
    assert isinstance(img2, ImageChunk)
    assert (img1.format, img1.expected_tokens, img1.data) == ("png", 4, PNG)
    assert (img2.format, img2.expected_tokens) == ("jpeg", 3)
    assert special["<|image_pad|>"] not in [
        t for c in prompt.chunks if isinstance(c, EncodedTextChunk) for t in c.tokens
    ]

    model_input, weights = renderer.build_supervised_example(messages)
    assert len(weights) == sum(c.length for c in model_input.chunks)
    prompt_len = sum(c.length for c in prompt.chunks)
    assert model_input.chunks[:4] == prompt.chunks[:4]
    assert not weights[:prompt_len].any()  # images and the prompt are never trained
    assert weights[prompt_len:].all()
    _, all_weights = renderer.build_supervised_example(messages, "all_messages")
    start = len(first.tokens)  # user content, images included, is trained here
    assert np.all(all_weights[start : start + 4] == 1.0)
    assert all_weights[start - 1] == 1.0  # <|vision_start|>


def test_image_part_validation_and_placement() -> None:
    renderer = _renderer("qwen3_vl_instruct")
    with pytest.raises(InvalidDataError, match="expected_tokens"):
        image_chunk({"type": "image", "image": PNG})
    with pytest.raises(InvalidDataError, match="format"):
        image_chunk({"type": "image", "image": b"GIF89a", "expected_tokens": 2})
    assert image_chunk({"type": "image", "image": b"x", "expected_tokens": 2, "format": "jpeg"})
    with pytest.raises(InvalidDataError, match="cannot read image"):
        image_chunk({"type": "image", "image": "/nonexistent/x.png", "expected_tokens": 2})
    bad = [{"role": "assistant", "content": [{"type": "image", "image": PNG}]}]
    with pytest.raises(InvalidDataError, match="images go in user or tool"):
        renderer.render_text(bad)
    forged = [{"role": "user", "content": "a\x00qwen3-vl-image\x00b"}]
    with pytest.raises(InvalidDataError, match="image marker"):
        renderer.build_generation_prompt(forged)


@pytest.mark.parametrize("name", ["qwen3", "qwen3_instruct", "llama3", "role_colon"])
def test_text_only_renderers_refuse_images(name: str) -> None:
    family = "llama3" if name == "llama3" else "qwen3"
    renderer = get_renderer(name, _port(family))
    image = {"type": "image", "image": PNG, "expected_tokens": 4}
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]
    with pytest.raises(InvalidDataError, match="image"):
        renderer.build_generation_prompt(messages)


def test_model_lookup() -> None:
    port = _port("qwen3")
    for model, expected in [
        ("Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl_instruct"),
        ("qwen/QWEN3-VL-30B-A3B-INSTRUCT", "qwen3_vl_instruct"),
        ("Qwen/Qwen3-VL-235B-A22B-Thinking", "qwen3_vl"),
    ]:
        assert renderer_for_model(model, port).name == expected, model


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_parse_response_round_trips(name: str) -> None:
    renderer = _renderer(name)
    message: dict[str, Any] = {"role": "assistant", "content": "It is sunny."}
    if name == "qwen3_vl":
        message["reasoning_content"] = "Check the sky."
    conv = [{"role": "user", "content": "Weather?"}, message]
    model_input, weights = renderer.build_supervised_example(conv)
    tokens = model_input.to_ints()
    sampled = [t for t, w in zip(tokens, weights, strict=True) if w > 0]
    parsed, ok = renderer.parse_response(sampled)
    assert ok
    assert parsed == message
