# ruff: noqa: RUF001, RUF002  # the format's tokens use fullwidth bars (U+FF5C) on purpose
"""DeepSeek V3.1 chat formats: non-thinking (``deepseekv3``) and thinking (``deepseekv3_thinking``).

Both follow the official V3.1 template: a BOS, then every system message joined by
``\\n\\n`` (no header), ``<｜User｜>{content}``, assistant turns after a user message
``<｜Assistant｜></think>{content}<｜end▁of▁sentence｜>`` (reasoning dropped, inline text up
to ``</think>`` removed), tool calls
``<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{arguments}<｜tool▁call▁end｜>…
<｜tool▁calls▁end｜>`` before the end token, tool results
``<｜tool▁output▁begin｜>{content}<｜tool▁output▁end｜>``, and an assistant turn after a
tool result (or another assistant turn) written with no header at all. The template
declares no tools: callers describe them in the system prompt, ``tools`` is ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text

__all__ = ["DeepSeekV3Renderer", "DeepSeekV3ThinkingRenderer"]

_BOS = "<｜begin▁of▁sentence｜>"
_EOS = "<｜end▁of▁sentence｜>"
_USER = "<｜User｜>"
_ASSISTANT = "<｜Assistant｜>"
_THINK = "<think>"
_END_THINK = "</think>"
_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
_CALLS_END = "<｜tool▁calls▁end｜>"
_CALL_BEGIN = "<｜tool▁call▁begin｜>"
_CALL_END = "<｜tool▁call▁end｜>"
_SEP = "<｜tool▁sep｜>"
_OUTPUT_BEGIN = "<｜tool▁output▁begin｜>"
_OUTPUT_END = "<｜tool▁output▁end｜>"
_TOOL_MARKERS = (_CALLS_BEGIN, _CALLS_END, _CALL_BEGIN, _CALL_END, _SEP)
_CALL_RE = re.compile(
    re.escape(_CALL_BEGIN) + "(.*?)" + re.escape(_SEP) + "(.*?)" + re.escape(_CALL_END),
    re.DOTALL,
)


class DeepSeekV3Renderer(Renderer):
    """DeepSeek V3.1 non-thinking (the template with ``thinking=False``).

    The generation prompt after a user message is ``<｜Assistant｜></think>``; after a tool
    result (or an assistant turn) the template adds nothing and neither does this renderer.
    ``reasoning_content`` is dropped everywhere, as in the template.
    """

    name = "deepseekv3"
    special_token_texts = (
        _BOS,
        _EOS,
        _USER,
        _ASSISTANT,
        _THINK,
        _END_THINK,
        *_TOOL_MARKERS,
        _OUTPUT_BEGIN,
        _OUTPUT_END,
    )
    #: Whether the prompt opens a think block (and the final turn is written as sampled).
    thinking = False

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        del tools  # the template declares no tools
        pieces = [Piece(_BOS, special=True, bos=True)]
        first_system = True
        for i, m in enumerate(messages):
            if m.role == "system":
                if not first_system:
                    pieces.append(Piece("\n\n", message=i))
                pieces.append(Piece(message_text(m), message=i, output=True))
                first_system = False
        n = len(messages)
        after_user = after_tool = False
        for i, m in enumerate(messages):
            if m.role == "user":
                pieces += [Piece(_USER, True, i), Piece(message_text(m), message=i, output=True)]
                after_user, after_tool = True, False
            elif m.role == "tool":
                pieces += [
                    Piece(_OUTPUT_BEGIN, True, i),
                    Piece(message_text(m), message=i, output=True),
                    Piece(_OUTPUT_END, True, i, True),
                ]
                after_user, after_tool = False, True
            elif m.role == "assistant":
                pieces += self._assistant(
                    m, i, after_user=after_user, after_tool=after_tool, last=i == n - 1
                )
                after_user = after_tool = False
        if generation and after_user:
            pieces += [
                Piece(_ASSISTANT, True),
                Piece(_THINK if self.thinking else _END_THINK, True),
            ]
        return pieces

    def _assistant(
        self, m: Message, i: int, *, after_user: bool, after_tool: bool, last: bool
    ) -> list[Piece]:
        """One assistant turn: header (only after a user message), output through EOS."""
        content = message_text(m)
        reasoning = m.reasoning_content
        # The thinking renderer writes a final turn after a user message the way the
        # model samples it after the "<think>" prompt (the template would write "</think>").
        sampled = self.thinking and after_user and last
        pieces: list[Piece] = []
        if after_user:
            pieces += [
                Piece(_ASSISTANT, True, i),
                Piece(_THINK if sampled else _END_THINK, True, i),
            ]
        if not m.tool_calls and not after_tool and _END_THINK in content:
            inline, content = content.split(_END_THINK, 1)
            if reasoning is None:
                reasoning = inline.removeprefix(_THINK)
        if sampled:
            pieces += [
                Piece(reasoning or "", message=i, output=True),
                Piece(_END_THINK, True, i, True),
            ]
        pieces.append(Piece(content, message=i, output=True))
        if m.tool_calls:
            pieces.append(Piece(_CALLS_BEGIN, True, i, True))
            for call in m.tool_calls:
                pieces += [
                    Piece(_CALL_BEGIN, True, i, True),
                    Piece(call.name, message=i, output=True),
                    Piece(_SEP, True, i, True),
                    Piece(call.arguments, message=i, output=True),
                    Piece(_CALL_END, True, i, True),
                ]
            pieces.append(Piece(_CALLS_END, True, i, True))
        pieces.append(Piece(_EOS, True, i, True))
        return pieces

    def get_stop_sequences(self) -> list[int]:
        """The ``<｜end▁of▁sentence｜>`` token."""
        return [self._stop_token(_EOS)]

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Reasoning (text before ``</think>``), text and the tool-call section of a turn."""
        text, ok = self._decode_turn(tokens, _EOS)
        if text is None or not ok:
            return {"role": "assistant", "content": text or ""}, False
        message: dict[str, Any] = {"role": "assistant", "content": text}
        reasoning = ""
        if _END_THINK in text:
            think, _, text = text.partition(_END_THINK)
            reasoning = think.removeprefix(_THINK)
            if _THINK in reasoning:
                return message, False
        if _THINK in text or _END_THINK in text:
            return message, False
        content, sep, section = text.partition(_CALLS_BEGIN)
        if any(marker in content for marker in _TOOL_MARKERS):
            return message, False
        calls: list[dict[str, Any]] = []
        if sep:
            if not section.endswith(_CALLS_END):
                return message, False
            section = section[: -len(_CALLS_END)]
            pos = 0
            for match in _CALL_RE.finditer(section):
                call = _parse_call(match.group(1), match.group(2))
                if match.start() != pos or call is None:
                    return message, False
                calls.append(call)
                pos = match.end()
            if pos != len(section) or not calls:
                return message, False
        message["content"] = content
        if reasoning:
            message["reasoning_content"] = reasoning
        if calls:
            message["tool_calls"] = calls
        return message, True


def _parse_call(name: str, arguments: str) -> dict[str, Any] | None:
    """An OpenAI tool call, or ``None`` for an empty name or non-object arguments."""
    if not name or any(marker in name + arguments for marker in _TOOL_MARKERS):
        return None
    try:
        decoded = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


class DeepSeekV3ThinkingRenderer(DeepSeekV3Renderer):
    """DeepSeek V3.1 thinking (the template with ``thinking=True``).

    The generation prompt after a user message is ``<｜Assistant｜><think>``. History
    turns are written as the template writes them (``</think>`` + content, reasoning
    dropped); a *final* assistant turn after a user message is written as sampled,
    ``<think>`` (prompt) + ``{reasoning}</think>{content}<｜end▁of▁sentence｜>`` (output), so
    a supervised example extends its prompt.
    """

    name = "deepseekv3_thinking"
    thinking = True
