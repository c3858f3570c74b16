"""Kimi K2 Thinking chat format (text only: no tools, no images).

Follows ``kimi_k2_thinking_llamacpp.jinja``: ``<|im_system|>`` / ``<|im_user|>`` /
``<|im_assistant|>`` headers ending in ``<|im_middle|>``, every turn closed by
``<|im_end|>`` with no newline between turns, a default system prompt when the first
message is not a system one, and assistant turns framed ``<think>…</think>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text
from crucible_train.errors import InvalidDataError

__all__ = ["KimiK2Renderer"]

_IM_SYSTEM = "<|im_system|>"
_IM_USER = "<|im_user|>"
_IM_ASSISTANT = "<|im_assistant|>"
_IM_MIDDLE = "<|im_middle|>"
_IM_END = "<|im_end|>"
_DEFAULT_SYSTEM = "You are Kimi, an AI assistant created by Moonshot AI."


class KimiK2Renderer(Renderer):
    """Kimi-K2-Thinking, text conversations without tools.

    As in the template, the *first* assistant message without tool calls and every
    message before it form the history, whose assistant turns get an empty
    ``<think></think>``; later assistant turns keep ``<think>{reasoning}</think>``.
    The generation prompt is ``<|im_assistant|>assistant<|im_middle|>``: the model
    writes its own think block.

    Raises (when rendering):
        InvalidDataError: tools, tool calls, ``tool`` messages or image parts (not
            supported by this renderer yet).
    """

    name = "kimi_k2"
    special_token_texts = (
        "[BOS]",
        "[EOS]",
        _IM_SYSTEM,
        _IM_USER,
        _IM_ASSISTANT,
        _IM_MIDDLE,
        _IM_END,
        "<think>",
        "</think>",
    )

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        if tools:
            raise InvalidDataError(f"the {self.name} renderer does not render tools yet")
        for i, m in enumerate(messages):
            if m.role == "tool" or m.tool_calls:
                raise InvalidDataError(
                    f"messages[{i}]: the {self.name} renderer does not render tool calls "
                    "or tool results yet"
                )
        history_end = next(
            (i for i, m in enumerate(messages) if m.role == "assistant"), len(messages)
        )
        pieces: list[Piece] = []
        if not messages or messages[0].role != "system":
            pieces += [
                Piece(_IM_SYSTEM, special=True),
                Piece("system"),
                Piece(_IM_MIDDLE, special=True),
                Piece(_DEFAULT_SYSTEM),
                Piece(_IM_END, special=True),
            ]
        for i, m in enumerate(messages):
            marker = {"user": _IM_USER, "assistant": _IM_ASSISTANT}.get(m.role, _IM_SYSTEM)
            pieces += [
                Piece(marker, True, i),
                Piece(m.name or m.role, message=i),
                Piece(_IM_MIDDLE, True, i),
            ]
            if m.role == "assistant":
                reasoning = "" if i <= history_end else (m.reasoning_content or "")
                pieces += [
                    Piece("<think>", True, i, True),
                    Piece(reasoning, message=i, output=True),
                    Piece("</think>", True, i, True),
                ]
            pieces.append(Piece(message_text(m), message=i, output=True))
            pieces.append(Piece(_IM_END, True, i, True))
        if generation:
            pieces += [
                Piece(_IM_ASSISTANT, special=True),
                Piece("assistant"),
                Piece(_IM_MIDDLE, special=True),
            ]
        return [p for p in pieces if p.text]

    def get_stop_sequences(self) -> list[int]:
        """The ``<|im_end|>`` token."""
        return [self._stop_token(_IM_END)]

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Reasoning (``<think>…</think>``) and text of a sampled turn."""
        text, ok = self._decode_turn(tokens, _IM_END)
        if text is None or not ok:
            return {"role": "assistant", "content": text or ""}, False
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if text.startswith("<think>"):
            reasoning, sep, content = text[len("<think>") :].partition("</think>")
            if not sep or "<think>" in reasoning or "<think>" in content:
                return message, False
            message["content"] = content
            if reasoning:
                message["reasoning_content"] = reasoning
        elif "<think>" in text or "</think>" in text:
            return message, False
        return message, True
