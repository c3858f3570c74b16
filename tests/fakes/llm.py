"""FakeLLMClient: answers with a scripted text (or a function of the prompt); records calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crucible_train.errors import LLMClientError
from crucible_train.ports.llm import Completion, LLMClient, LLMParams


class FakeLLMClient(LLMClient):
    """A chat/completion model whose answer is scripted.

    Args:
        reply: the answer, or ``reply(prompt)`` computing it from the prompt text (the last
            message's content for ``chat``); by default it echoes the prompt.
        fail_with: every call raises this.

    Token counts are word counts; ``max_tokens`` cuts the answer to that many words (finish
    reason ``length``). An empty conversation is an ``LLMClientError``. Records
    :attr:`chats` (each message list), :attr:`completions` (each plain prompt),
    :attr:`prompts` (the prompt text of every call) and :attr:`params`.
    """

    def __init__(
        self, reply: str | Callable[[str], str] | None = None, *, fail_with: Exception | None = None
    ) -> None:
        self.reply = reply
        self.fail_with = fail_with
        self.chats: list[list[dict[str, Any]]] = []
        self.completions: list[str] = []
        self.prompts: list[str] = []
        self.params: list[LLMParams | None] = []

    def chat(
        self, messages: Sequence[Mapping[str, Any]], params: LLMParams | None = None
    ) -> Completion:
        """Answers the last message."""
        self.chats.append([dict(m) for m in messages])
        if not messages:
            raise LLMClientError("the conversation is empty; give at least one message")
        return self._answer(str(messages[-1].get("content", "")), params)

    def complete(self, prompt: str, params: LLMParams | None = None) -> Completion:
        """Answers ``prompt``."""
        self.completions.append(prompt)
        return self._answer(prompt, params)

    def _answer(self, prompt: str, params: LLMParams | None) -> Completion:
        self.prompts.append(prompt)
        self.params.append(params)
        if self.fail_with is not None:
            raise self.fail_with
        if self.reply is None:
            text = prompt
        elif isinstance(self.reply, str):
            text = self.reply
        else:
            text = self.reply(prompt)
        words = text.split()
        limit = params.max_tokens if params is not None else None
        finish = "stop"
        if limit is not None and len(words) > limit:
            text, words, finish = " ".join(words[:limit]), words[:limit], "length"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(prompt.split()),
            completion_tokens=len(words),
        )
