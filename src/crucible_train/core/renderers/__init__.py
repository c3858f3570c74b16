"""Chat renderers: conversations → model tokens (prompts, weighted examples) and back."""

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.gpt_oss import GptOssRenderer
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
)
from crucible_train.core.renderers.registry import get_renderer, list_renderers, renderer_for_model
from crucible_train.core.renderers.role_colon import RoleColonRenderer

__all__ = [
    "VALID_ROLES",
    "GptOssRenderer",
    "Llama3Renderer",
    "Message",
    "Piece",
    "Qwen3DisableThinkingRenderer",
    "Qwen3InstructRenderer",
    "Qwen3Renderer",
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
