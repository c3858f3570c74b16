"""Kimi K2 Thinking chat format, with tools (text only: no images).

Follows the Kimi-K2-Thinking template: ``<|im_system|>`` / ``<|im_user|>`` /
``<|im_assistant|>`` headers ending in ``<|im_middle|>``, every turn closed by
``<|im_end|>`` with no newline between turns, a default system prompt when the first
message is not a system one, assistant turns framed ``<think>…</think>``, a
``tool_declare`` system turn with the tools as JSON, tool calls in a
``<|tool_calls_section_begin|>`` section and tool results as ``## Return of {id}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text

__all__ = ["KimiK2Renderer"]

_IM_SYSTEM = "<|im_system|>"
_IM_USER = "<|im_user|>"
_IM_ASSISTANT = "<|im_assistant|>"
_IM_MIDDLE = "<|im_middle|>"
_IM_END = "<|im_end|>"
_SECTION_BEGIN = "<|tool_calls_section_begin|>"
_SECTION_END = "<|tool_calls_section_end|>"
_CALL_BEGIN = "<|tool_call_begin|>"
_CALL_ARGS = "<|tool_call_argument_begin|>"
_CALL_END = "<|tool_call_end|>"
_DEFAULT_SYSTEM = "You are Kimi, an AI assistant created by Moonshot AI."
# One call of a section: begin marker, id, argument marker, JSON arguments, end marker.
_CALL_RE = re.compile(
    re.escape(_CALL_BEGIN) + r"(.*?)" + re.escape(_CALL_ARGS) + r"(.*?)" + re.escape(_CALL_END),
    re.DOTALL,
)
# Kimi's native call ids: functions.<name>:<index>
_ID_RE = re.compile(r"functions\.([^\s:<>]+):(\d+)")


class KimiK2Renderer(Renderer):
    """Kimi-K2-Thinking, text conversations with or without tools.

    As in the template, the *first* assistant message without tool calls and every
    message before it form the history, whose assistant turns get an empty
    ``<think></think>``; later assistant turns keep ``<think>{reasoning}</think>``.
    The generation prompt is ``<|im_assistant|>assistant<|im_middle|>``: the model
    writes its own think block.

    Tools: ``tools`` are declared first, as ``<|im_system|>tool_declare<|im_middle|>``
    plus their JSON (``json.dumps``, as transformers' ``tojson``). A call renders
    ``<|tool_call_begin|>{id}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>``
    with the arguments text as given; the id is the call's ``id``, or Kimi's native
    ``functions.{name}:{n}`` (``n`` counts the conversation's calls) when it has none.
    A tool result is a system-style turn named after the message's ``name`` (else
    ``tool``) holding ``## Return of {tool_call_id}\\n{content}``; without a
    ``tool_call_id`` it answers the oldest unanswered call.

    Deliberate difference in supervised examples: the history split is taken over the
    messages before a final assistant turn, so the trained turn keeps its reasoning and
    the turns before it render as in its generation prompt (the template would blank the
    final answer's reasoning as history, teaching the model to answer without thinking).

    Raises (when rendering):
        InvalidDataError: image parts (not supported by this renderer).
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
        _SECTION_BEGIN,
        _SECTION_END,
        _CALL_BEGIN,
        _CALL_ARGS,
        _CALL_END,
    )

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        # A trained final answer keeps its reasoning (the template would blank it as
        # history), so the split is taken over the messages before it.
        trained_final = not generation and bool(messages) and messages[-1].role == "assistant"
        context = messages[:-1] if trained_final else messages
        history_end = next(
            (i for i, m in enumerate(context) if m.role == "assistant" and not m.tool_calls),
            -1,
        )
        pieces: list[Piece] = []
        if tools:
            pieces += [
                Piece(_IM_SYSTEM, special=True),
                Piece("tool_declare"),
                Piece(_IM_MIDDLE, special=True),
                Piece(json.dumps([dict(t) for t in tools], ensure_ascii=False)),
                Piece(_IM_END, special=True),
            ]
        if not messages or messages[0].role != "system":
            pieces += [
                Piece(_IM_SYSTEM, special=True),
                Piece("system"),
                Piece(_IM_MIDDLE, special=True),
                Piece(_DEFAULT_SYSTEM),
                Piece(_IM_END, special=True),
            ]
        n_calls = 0
        unanswered: list[str] = []
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
                    Piece(message_text(m), message=i, output=True),
                ]
                if m.tool_calls:
                    pieces.append(Piece(_SECTION_BEGIN, True, i, True))
                    for call in m.tool_calls:
                        call_id = call.id or f"functions.{call.name}:{n_calls}"
                        n_calls += 1
                        unanswered.append(call_id)
                        pieces += [
                            Piece(_CALL_BEGIN, True, i, True),
                            Piece(call_id, message=i, output=True),
                            Piece(_CALL_ARGS, True, i, True),
                            Piece(call.arguments, message=i, output=True),
                            Piece(_CALL_END, True, i, True),
                        ]
                    pieces.append(Piece(_SECTION_END, True, i, True))
            elif m.role == "tool":
                if m.tool_call_id is not None:
                    call_id = m.tool_call_id
                    if call_id in unanswered:
                        unanswered.remove(call_id)
                elif unanswered:
                    call_id = unanswered.pop(0)
                else:
                    call_id = f"functions.{m.name or 'unknown'}:{n_calls}"
                pieces.append(Piece(f"## Return of {call_id}\n", message=i))
                pieces.append(Piece(message_text(m), message=i, output=True))
            else:
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
        """Reasoning (``<think>…</think>``), text and tool-call section of a sampled turn.

        Tool call ids must be Kimi's ``functions.{name}:{n}`` (the name is read from
        the id); arguments must be a JSON object and are kept as written. Anything
        malformed gives ``ok=False`` with the decoded text as content.
        """
        text, ok = self._decode_turn(tokens, _IM_END)
        if text is None or not ok:
            return {"role": "assistant", "content": text or ""}, False
        failed: dict[str, Any] = {"role": "assistant", "content": text}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        body = text
        if body.startswith("<think>"):
            reasoning, sep, body = body[len("<think>") :].partition("</think>")
            if not sep or "<think>" in reasoning:
                return failed, False
            if reasoning:
                message["reasoning_content"] = reasoning
        if "<think>" in body or "</think>" in body:
            return failed, False
        content, sep, section = body.partition(_SECTION_BEGIN)
        message["content"] = content
        if not sep:
            if any(marker in content for marker in (_SECTION_END, _CALL_BEGIN, _CALL_END)):
                return failed, False
            return message, True
        calls = _parse_section(section)
        if calls is None:
            return failed, False
        message["tool_calls"] = calls
        return message, True


def _parse_section(section: str) -> list[dict[str, Any]] | None:
    """OpenAI tool calls of one section (the text after its begin marker), else ``None``."""
    if not section.endswith(_SECTION_END):
        return None
    section = section[: -len(_SECTION_END)]
    calls: list[dict[str, Any]] = []
    pos = 0
    for match in _CALL_RE.finditer(section):
        if match.start() != pos:
            return None
        call_id, args = match.group(1), match.group(2)
        id_match = _ID_RE.fullmatch(call_id)
        if id_match is None or _CALL_BEGIN in args:
            return None
        try:
            decoded = json.loads(args)
        except json.JSONDecodeError:
            return None
        if not isinstance(decoded, dict):
            return None
        calls.append(
            {
                "type": "function",
                "id": call_id,
                "function": {"name": id_match.group(1), "arguments": args},
            }
        )
        pos = match.end()
    if pos != len(section) or not calls:
        return None
    return calls
