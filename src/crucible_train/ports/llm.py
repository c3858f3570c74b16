"""Port: a chat/completion model used for evaluation, judging and comparison.

A new adapter must guarantee: calls block until an answer or a typed
:class:`~crucible_train.errors.LLMClientError` (timeouts included); thread-safe so a
bounded pool can call it concurrently; API keys never in messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["Completion", "LLMClient", "LLMParams"]


@attrs.frozen(kw_only=True)
class LLMParams:
    """Generation settings; ``None`` leaves the server's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@attrs.frozen(kw_only=True)
class Completion:
    """A model answer and what it cost."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class LLMClient(Protocol):
    """Produces text from a chat or a plain prompt."""

    def chat(
        self, messages: Sequence[Mapping[str, Any]], params: LLMParams | None = None
    ) -> Completion:
        """Answer an OpenAI-style message list (``role``/``content`` dicts)."""
        ...

    def complete(self, prompt: str, params: LLMParams | None = None) -> Completion:
        """Continue a plain text prompt."""
        ...
