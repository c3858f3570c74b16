"""LLM client for OpenAI-compatible servers (adapter layer, over the HttpClient port)."""

from __future__ import annotations

from crucible_train.adapters.openai_compat.llm_client import OpenAICompatLLMClient

__all__ = ["OpenAICompatLLMClient"]
