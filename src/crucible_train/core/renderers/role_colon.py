"""``role_colon``: the plain ``User: ...`` transcript format for base models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text
from crucible_train.errors import InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["RoleColonRenderer"]

_STOP = "\n\nUser:"


class RoleColonRenderer(Renderer):
    """``Role: content`` blocks separated by blank lines; no tools, no reasoning.

    Args:
        tokenizer: the model's tokenizer.
        bos_token: special-token text to start every sequence with (e.g.
            ``<|begin_of_text|>``); ``None`` adds nothing.
    """

    name = "role_colon"
    reasoning_hint = (
        "the role_colon format has no reasoning; remove reasoning_content from that turn"
    )

    def _writes_final_reasoning(self, messages: list[Message]) -> bool:
        """The format has no reasoning."""
        return False

    def __init__(self, tokenizer: Tokenizer, bos_token: str | None = None) -> None:
        super().__init__(tokenizer)
        self._bos = bos_token
        self.special_token_texts = (bos_token,) if bos_token else ()

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        if tools:
            raise InvalidDataError("role_colon has no tool format")
        pieces = [Piece(self._bos, special=True, bos=True)] if self._bos else []
        for i, m in enumerate(messages):
            if m.tool_calls or m.role == "tool":
                raise InvalidDataError(f"messages[{i}]: role_colon has no tool format")
            pieces.append(Piece(f"{m.role.capitalize()}:", message=i))
            pieces.append(Piece(f" {message_text(m)}\n\n", message=i, output=True))
        if generation:
            pieces.append(Piece("Assistant:"))
        elif messages and messages[-1].role == "assistant":
            # The next "User:" is what ends the turn at sampling time, so it is trained
            # with the answer (it is the stop sequence's tail).
            pieces.append(Piece("User:", message=len(messages) - 1, output=True))
        return pieces

    def get_stop_sequences(self) -> list[str]:
        """The blank line and ``User:`` that start the next user turn."""
        return [_STOP]

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Content up to ``\\n\\nUser:``; clean if that marker or EOS ended the sample."""
        toks = list(tokens)
        eos = self._tokenizer.eos_token_id
        ended_by_eos = bool(toks) and eos is not None and toks[-1] == eos
        if ended_by_eos:
            toks = toks[:-1]
        text = self._safe_decode(toks)
        if text is None:
            return {"role": "assistant", "content": ""}, False
        head, sep, _ = text.partition(_STOP)
        content = head[1:] if head.startswith(" ") else head
        if not sep and content.endswith("\n\n"):
            content = content[:-2]
        ok = bool(sep) != ended_by_eos
        return {"role": "assistant", "content": content}, ok
