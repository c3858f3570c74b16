"""Renderer registry: by name, or recommended for a model name."""

from __future__ import annotations

from collections.abc import Callable

from crucible_train.core.renderers.base import Renderer
from crucible_train.core.renderers.deepseek_v3 import (
    DeepSeekV3_0324Renderer,
    DeepSeekV3Renderer,
    DeepSeekV3ThinkingRenderer,
)
from crucible_train.core.renderers.gpt_oss import (
    GptOssHighReasoningRenderer,
    GptOssLowReasoningRenderer,
    GptOssMediumReasoningRenderer,
    GptOssRenderer,
)
from crucible_train.core.renderers.kimi_k2 import KimiK2Renderer
from crucible_train.core.renderers.llama3 import Llama3Renderer
from crucible_train.core.renderers.qwen3 import (
    Qwen3DisableThinkingRenderer,
    Qwen3InstructRenderer,
    Qwen3Renderer,
    Qwen3Thinking2507Renderer,
)
from crucible_train.core.renderers.qwen3_vl import Qwen3VLInstructRenderer, Qwen3VLRenderer
from crucible_train.core.renderers.role_colon import RoleColonRenderer
from crucible_train.errors import ConfigurationError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["get_renderer", "list_renderers", "renderer_for_model"]

_FACTORIES: dict[str, Callable[[Tokenizer], Renderer]] = {
    "role_colon": RoleColonRenderer,
    "llama3": Llama3Renderer,
    "qwen3": Qwen3Renderer,
    "qwen3_disable_thinking": Qwen3DisableThinkingRenderer,
    "qwen3_instruct": Qwen3InstructRenderer,
    "qwen3_thinking": Qwen3Thinking2507Renderer,
    "qwen3_vl": Qwen3VLRenderer,
    "qwen3_vl_instruct": Qwen3VLInstructRenderer,
    "gpt_oss": GptOssRenderer,
    "gpt_oss_low_reasoning": GptOssLowReasoningRenderer,
    "gpt_oss_medium_reasoning": GptOssMediumReasoningRenderer,
    "gpt_oss_high_reasoning": GptOssHighReasoningRenderer,
    "deepseekv3": DeepSeekV3Renderer,
    "deepseekv3_thinking": DeepSeekV3ThinkingRenderer,
    "deepseekv3_0324": DeepSeekV3_0324Renderer,
    "kimi_k2": KimiK2Renderer,
}


def list_renderers() -> list[str]:
    """Names :func:`get_renderer` accepts, sorted."""
    return sorted(_FACTORIES)


def get_renderer(name: str, tokenizer: Tokenizer) -> Renderer:
    """The renderer called ``name`` (case-insensitive) over ``tokenizer``.

    Raises:
        ConfigurationError: unknown name; the message lists the known ones.
    """
    factory = _FACTORIES.get(name.lower())
    if factory is None:
        raise ConfigurationError(
            f"unknown renderer {name!r}; known renderers: {', '.join(list_renderers())}"
        )
    return factory(tokenizer)


def _short_name(model_name: str) -> str:
    """``org/Name:tag`` → ``name``."""
    return model_name.split(":")[0].rsplit("/", 1)[-1].lower()


def _deepseek_name(short: str) -> str | None:
    """Renderer for a DeepSeek-V3-family model name (lower case), ``None`` if unsupported.

    Evidence: V3 / V3-0324 ship ``deepseek_v3_0324.jinja`` (no ``</think>``). V3.2-Exp
    builds on V3.1-Terminus and its ``assets/chat_template.jinja`` carries V3.1's
    ``message['prefix'] ... and thinking`` rule, by which llama.cpp detects V3.1
    (ggml-org/llama.cpp PR #19474), so it renders as V3.1. V3.2 ships no jinja template,
    only ``encoding/encoding_dsv32.py`` with DSML tool calls (alibaba/rtp-llm PR #415).
    """
    if short.endswith("-base"):
        return "role_colon"
    if short in ("deepseek-v3", "deepseek-v3-0324"):
        return "deepseekv3_0324"
    if short.startswith(("deepseek-v3.1", "deepseek-v3.2-exp")):
        return "deepseekv3"  # thinking is opt-in: deepseekv3_thinking
    return None


def _name_for_model(model_name: str) -> str | None:
    """Recommended renderer name for a model (case-insensitive), ``None`` if unknown."""
    short = _short_name(model_name)
    if short.startswith("gpt-oss"):
        return "gpt_oss_medium_reasoning"  # the template's default effort
    if short.startswith(("llama-3", "meta-llama-3")):
        return "llama3" if "instruct" in short else "role_colon"
    if short.startswith("qwen3-") and not short.startswith("qwen3-vl"):
        if short.endswith("-base"):
            return "role_colon"
        if "instruct-2507" in short:
            return "qwen3_instruct"
        if "thinking-2507" in short:
            return "qwen3_thinking"
        if "2507" not in short:
            return "qwen3"
    if short.startswith("qwen3-vl-"):
        return "qwen3_vl_instruct" if "instruct" in short else "qwen3_vl"
    if short.startswith("kimi-k2-thinking"):  # K2-Instruct has another template
        return "kimi_k2"
    if short.startswith("deepseek-v3"):
        return _deepseek_name(short)
    return None


def renderer_for_model(model_name: str, tokenizer: Tokenizer) -> Renderer:
    """The recommended renderer for ``model_name`` (e.g. ``Qwen/Qwen3-8B`` → ``qwen3``).

    Raises:
        ConfigurationError: no renderer fits the model; the message says why and lists
            the known renderers.
    """
    name = _name_for_model(model_name)
    if name is None:
        short = _short_name(model_name)
        if short.startswith("deepseek-v3.2"):
            raise ConfigurationError(
                f"no renderer reproduces {model_name!r}: DeepSeek-V3.2 ships a Python encoder "
                "(encoding/encoding_dsv32.py, DSML tool calls) instead of a chat template, and "
                "its exact format is not vendored here. For DeepSeek-V3.2-Exp or V3.1 use "
                "'deepseekv3' / 'deepseekv3_thinking'; to train V3.2 without tool calls, choose "
                "'deepseekv3_thinking' explicitly with get_renderer and check its output "
                "against encode_messages first"
            )
        raise ConfigurationError(
            f"no renderer known for model {model_name!r}; supported: Llama-3.x (Instruct → "
            "llama3, base → role_colon), Qwen3 hybrid (qwen3), Qwen3-*-Instruct-2507 "
            "(qwen3_instruct), Qwen3-*-Thinking-2507 (qwen3_thinking), Qwen3-VL (qwen3_vl, "
            "qwen3_vl_instruct), DeepSeek-V3 / V3-0324 (deepseekv3_0324), DeepSeek-V3.1 / "
            "V3.1-Terminus / V3.2-Exp (deepseekv3), Kimi-K2-Thinking (kimi_k2), gpt-oss "
            "(gpt_oss_medium_reasoning), *-Base (role_colon); known renderers: "
            f"{', '.join(list_renderers())}"
        )
    return get_renderer(name, tokenizer)
