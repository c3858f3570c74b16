"""The renderer registry: names, case-insensitive lookups, and the model-name mapping."""

from __future__ import annotations

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core import renderers
from crucible_train.core.renderers import get_renderer, list_renderers, renderer_for_model
from crucible_train.errors import ConfigurationError

TOK = ByteLevelTokenizer(special_tokens=())

MODEL_RENDERERS = [
    # Llama 3.x: Instruct → llama3, base → role_colon.
    ("meta-llama/Llama-3.1-8B-Instruct", "llama3"),
    ("meta-llama/Llama-3.2-3B-Instruct", "llama3"),
    ("meta-llama/Llama-3.3-70B-Instruct", "llama3"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3"),
    ("meta-llama/Llama-3.1-8B", "role_colon"),
    ("meta-llama/Llama-3.2-1B", "role_colon"),
    # Qwen3: hybrid, -Base, Instruct-2507, Thinking-2507, VL.
    ("Qwen/Qwen3-8B", "qwen3"),
    ("Qwen/Qwen3-30B-A3B", "qwen3"),
    ("Qwen/Qwen3-8B-Base", "role_colon"),
    ("Qwen/Qwen3-30B-A3B-Instruct-2507", "qwen3_instruct"),
    ("Qwen/Qwen3-4B-Instruct-2507", "qwen3_instruct"),
    ("Qwen/Qwen3-30B-A3B-Thinking-2507", "qwen3_thinking"),
    ("Qwen/Qwen3-235B-A22B-Thinking-2507", "qwen3_thinking"),
    ("Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl_instruct"),
    ("Qwen/Qwen3-VL-30B-A3B-Thinking", "qwen3_vl"),
    # DeepSeek V3 family.
    ("deepseek-ai/DeepSeek-V3", "deepseekv3_0324"),
    ("deepseek-ai/DeepSeek-V3-0324", "deepseekv3_0324"),
    ("deepseek-ai/DeepSeek-V3.1", "deepseekv3"),
    ("deepseek-ai/DeepSeek-V3.1-Terminus", "deepseekv3"),
    ("deepseek-ai/DeepSeek-V3.2-Exp", "deepseekv3"),
    ("deepseek-ai/DeepSeek-V3-Base", "role_colon"),
    ("deepseek-ai/DeepSeek-V3.1-Base", "role_colon"),
    ("deepseek-ai/DeepSeek-V3.2-Exp-Base", "role_colon"),
    # Others.
    ("moonshotai/Kimi-K2-Thinking", "kimi_k2"),
    ("openai/gpt-oss-20b", "gpt_oss_medium_reasoning"),
    ("openai/gpt-oss-120b", "gpt_oss_medium_reasoning"),
    # org/name:suffix, no org, any case.
    ("Qwen/Qwen3-8B:latest", "qwen3"),
    ("deepseek-ai/DeepSeek-V3-0324:fp8", "deepseekv3_0324"),
    ("Qwen3-4B-Thinking-2507", "qwen3_thinking"),
    ("DEEPSEEK-AI/DEEPSEEK-V3.1-TERMINUS", "deepseekv3"),
    ("qwen/qwen3-vl-8b-instruct", "qwen3_vl_instruct"),
]


@pytest.mark.parametrize(("model", "expected"), MODEL_RENDERERS)
def test_model_names_map_to_their_renderer(model: str, expected: str) -> None:
    assert renderer_for_model(model, TOK).name == expected


@pytest.mark.parametrize(
    "model", ["deepseek-ai/DeepSeek-V3.2", "deepseek-ai/DeepSeek-V3.2-Speciale", "deepseek-v3.2"]
)
def test_deepseek_v3_2_is_refused_with_the_reason_and_an_alternative(model: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        renderer_for_model(model, TOK)
    message = str(info.value)
    assert "encoding_dsv32" in message  # why: no jinja template to match
    assert "deepseekv3" in message  # what to use instead


@pytest.mark.parametrize(
    "model",
    [
        "mistralai/Mistral-7B-Instruct-v0.3",
        "moonshotai/Kimi-K2-Instruct",  # another template than K2-Thinking
        "deepseek-ai/DeepSeek-R1",
        "",
    ],
)
def test_unknown_models_are_refused_listing_the_known_renderers(model: str) -> None:
    with pytest.raises(ConfigurationError, match="no renderer known") as info:
        renderer_for_model(model, TOK)
    assert ", ".join(list_renderers()) in str(info.value)


def test_list_renderers_is_sorted_and_complete() -> None:
    names = list_renderers()
    assert names == sorted(names)
    assert {"qwen3_thinking", "deepseekv3_0324"} <= set(names)
    assert {expected for _, expected in MODEL_RENDERERS} <= set(names)


@pytest.mark.parametrize("name", list_renderers())
def test_every_name_builds_its_renderer_case_insensitively(name: str) -> None:
    renderer = get_renderer(name, TOK)
    assert renderer.name == name
    assert get_renderer(name.upper(), TOK).name == name
    assert type(renderer).__name__ in renderers.__all__
    assert getattr(renderers, type(renderer).__name__) is type(renderer)


def test_unknown_renderer_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown renderer 'qwen4'") as info:
        get_renderer("qwen4", TOK)
    assert ", ".join(list_renderers()) in str(info.value)


def test_package_exports_resolve() -> None:
    exported = renderers.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(renderers, name)
