"""Chat renderers: conversations → model tokens (prompts, weighted examples) and back."""

from crucible_train.core.renderers.base import Piece, Renderer
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
from crucible_train.core.renderers.messages import (
    VALID_ROLES,
    Message,
    ToolCall,
    TrainOnWhat,
    to_message,
    to_messages,
)
from crucible_train.core.renderers.qwen3 import (
    Qwen3DisableThinkingRenderer,
    Qwen3InstructRenderer,
    Qwen3Renderer,
    Qwen3Thinking2507Renderer,
)
from crucible_train.core.renderers.qwen3_vl import Qwen3VLInstructRenderer, Qwen3VLRenderer
from crucible_train.core.renderers.registry import get_renderer, list_renderers, renderer_for_model
from crucible_train.core.renderers.role_colon import RoleColonRenderer

__all__ = [
    "VALID_ROLES",
    "DeepSeekV3Renderer",
    "DeepSeekV3ThinkingRenderer",
    "DeepSeekV3_0324Renderer",
    "GptOssHighReasoningRenderer",
    "GptOssLowReasoningRenderer",
    "GptOssMediumReasoningRenderer",
    "GptOssRenderer",
    "KimiK2Renderer",
    "Llama3Renderer",
    "Message",
    "Piece",
    "Qwen3DisableThinkingRenderer",
    "Qwen3InstructRenderer",
    "Qwen3Renderer",
    "Qwen3Thinking2507Renderer",
    "Qwen3VLInstructRenderer",
    "Qwen3VLRenderer",
    "Renderer",
    "RoleColonRenderer",
    "ToolCall",
    "TrainOnWhat",
    "get_renderer",
    "list_renderers",
    "renderer_for_model",
    "to_message",
    "to_messages",
]
