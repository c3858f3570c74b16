"""Noop LLM client (adapter layer, no technology): refuses to generate text.

Each call raises :class:`~crucible_train.errors.BackendNotConfiguredError` naming
``llm.backend``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.llm import Completion, LLMClient, LLMParams

__all__ = ["NoopLLMClient"]

_PORT = "llm"


class NoopLLMClient(LLMClient):
    """An LLM client for configurations that never ask a model for text."""

    def chat(
        self, messages: Sequence[Mapping[str, Any]], params: LLMParams | None = None
    ) -> Completion:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "chat")

    def complete(self, prompt: str, params: LLMParams | None = None) -> Completion:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "complete")
