"""Renderer registry: by name, or recommended for a model name."""

from __future__ import annotations

from collections.abc import Callable

from crucible_train.core.renderers.base import Renderer
from crucible_train.core.renderers.deepseek_v3 import (
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
    "qwen3_vl": Qwen3VLRenderer,
    "qwen3_vl_instruct": Qwen3VLInstructRenderer,
    "gpt_oss": GptOssRenderer,
    "gpt_oss_low_reasoning": GptOssLowReasoningRenderer,
    "gpt_oss_medium_reasoning": GptOssMediumReasoningRenderer,
    "gpt_oss_high_reasoning": GptOssHighReasoningRenderer,
    "deepseekv3": DeepSeekV3Renderer,
    "deepseekv3_thinking": DeepSeekV3ThinkingRenderer,
    "kimi_k2": KimiK2Renderer,
}


def list_renderers() -> list[str]:
    """Names :func:`get_renderer` accepts, sorted."""
    return sorted(_FACTORIES)


def get_renderer(name: str, tokenizer: Tokenizer) -> Renderer:
    """The renderer called ``name`` over ``tokenizer``.

    Raises:
        ConfigurationError: unknown name; the message lists the known ones.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigurationError(
            f"unknown renderer {name!r}; known renderers: {', '.join(list_renderers())}"
        )
    return factory(tokenizer)


def _name_for_model(model_name: str) -> str | None:
    """Recommended renderer name for a model (case-insensitive), ``None`` if unknown."""
    short = model_name.split(":")[0].rsplit("/", 1)[-1].lower()
    if short.startswith("gpt-oss"):
        return "gpt_oss_medium_reasoning"  # the template's default effort
    if short.startswith(("llama-3", "meta-llama-3")):
        return "llama3" if "instruct" in short else "role_colon"
    if short.startswith("qwen3-") and not short.startswith("qwen3-vl"):
        if short.endswith("-base"):
            return "role_colon"
        if "instruct-2507" in short:
            return "qwen3_instruct"
        if "2507" not in short:  # Thinking-2507 prefills <think>: a different format
            return "qwen3"
    if short.startswith("qwen3-vl-"):
        return "qwen3_vl_instruct" if "instruct" in short else "qwen3_vl"
    if short.startswith("kimi-k2-thinking"):  # K2-Instruct has another template
        return "kimi_k2"
    if short.startswith("deepseek-v3.1"):  # V3.1 / V3.1-Terminus; thinking is opt-in
        return "role_colon" if short.endswith("-base") else "deepseekv3"
    return None


def renderer_for_model(model_name: str, tokenizer: Tokenizer) -> Renderer:
    """The recommended renderer for ``model_name`` (e.g. ``Qwen/Qwen3-8B`` → ``qwen3``).

    Raises:
        ConfigurationError: no renderer fits the model; the message lists the known ones.
    """
    name = _name_for_model(model_name)
    if name is None:
        raise ConfigurationError(
            f"no renderer known for model {model_name!r}; supported: Llama-3.x (Instruct → "
            "llama3, base → role_colon), Qwen3 hybrid (qwen3), Qwen3-*-Instruct-2507 "
            f"(qwen3_instruct), *-Base (role_colon); known renderers: {', '.join(list_renderers())}"
        )
    return get_renderer(name, tokenizer)
