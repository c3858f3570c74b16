"""``llama3``: the Llama 3.1 / 3.3 Instruct chat format, as the official template renders it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text
from crucible_train.errors import InvalidDataError

__all__ = ["Llama3Renderer"]

_BOS = "<|begin_of_text|>"
_START = "<|start_header_id|>"
_END = "<|end_header_id|>"
_EOT = "<|eot_id|>"
# The official 3.1/3.3 templates always write this block into the system turn.
_DATE_BLOCK = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
_TOOL_PREAMBLE = (
    "Given the following functions, please respond with a JSON for a function call "
    "with its proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument '
    "name and its value}.Do not use variables.\n\n"
)


def _header(role: str, index: int | None) -> list[Piece]:
    return [
        Piece(_START, special=True, message=index),
        Piece(role, message=index),
        Piece(_END, special=True, message=index),
        Piece("\n\n", message=index),
    ]


class Llama3Renderer(Renderer):
    """Llama 3.1/3.3: date-stamped system turn, ``content|trim``, JSON tool calls.

    Tools (OpenAI specs) go into the first user turn, as the template's default
    ``tools_in_user_message`` does; an assistant turn with a tool call renders only
    ``{"name": ..., "parameters": ...}`` (its text is dropped, as in the template) and
    may hold one call; tool results use the ``ipython`` role with JSON-quoted content.
    Reasoning is not part of the format and is dropped.
    """

    name = "llama3"
    special_token_texts = (_BOS, _START, _END, _EOT)

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        pieces = [Piece(_BOS, special=True, bos=True)]
        rest = list(enumerate(messages))
        sys_index: int | None = None
        system = ""
        if rest and rest[0][1].role == "system":
            sys_index, first = rest.pop(0)
            system = message_text(first).strip()
        pieces += _header("system", sys_index)
        pieces.append(
            Piece(("Environment: ipython\n" if tools else "") + _DATE_BLOCK, message=sys_index)
        )
        pieces.append(Piece(system, message=sys_index, output=True))
        pieces.append(Piece(_EOT, special=True, message=sys_index, output=True))
        if tools:
            if not rest or rest[0][1].role != "user":
                raise InvalidDataError("llama3 puts tools in the first user message; there is none")
            idx, first_user = rest.pop(0)
            pieces += _header("user", idx)
            specs = "".join(
                json.dumps(dict(t), ensure_ascii=False, indent=4) + "\n\n" for t in tools
            )
            pieces.append(Piece(_TOOL_PREAMBLE + specs, message=idx))
            pieces.append(Piece(message_text(first_user).strip(), message=idx, output=True))
            pieces.append(Piece(_EOT, special=True, message=idx, output=True))
        for idx, m in rest:
            if m.role == "tool":
                pieces += _header("ipython", idx)
                # Strings are Jinja iterables, so the template JSON-quotes the result.
                body = json.dumps(message_text(m), ensure_ascii=False)
            elif m.tool_calls:
                if len(m.tool_calls) != 1:
                    raise InvalidDataError(f"messages[{idx}]: llama3 allows one tool call per turn")
                call = m.tool_calls[0]
                pieces += _header("assistant", idx)
                args = json.dumps(call.arguments_dict(), ensure_ascii=False)
                body = f'{{"name": "{call.name}", "parameters": {args}}}'
            else:
                pieces += _header(m.role, idx)
                body = message_text(m).strip()
            pieces.append(Piece(body, message=idx, output=True))
            pieces.append(Piece(_EOT, special=True, message=idx, output=True))
        if generation:
            pieces += _header("assistant", None)
        return pieces

    def get_stop_sequences(self) -> list[int]:
        """The ``<|eot_id|>`` token."""
        return [self._stop_token(_EOT)]

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Text before ``<|eot_id|>``; a bare ``{"name", "parameters"}`` object is a tool call."""
        text, ok = self._decode_turn(tokens, _EOT)
        if text is None:
            return {"role": "assistant", "content": ""}, False
        call = _as_tool_call(text)
        if call is not None:
            return {"role": "assistant", "content": "", "tool_calls": [call]}, ok
        return {"role": "assistant", "content": text}, ok


def _as_tool_call(text: str) -> dict[str, Any] | None:
    """An OpenAI tool call if ``text`` is exactly a Llama JSON call object."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if (
        not isinstance(obj, dict)
        or set(obj) != {"name", "parameters"}
        or not isinstance(obj["name"], str)
        or not isinstance(obj["parameters"], dict)
    ):
        return None
    args = json.dumps(obj["parameters"], ensure_ascii=False)
    return {"type": "function", "function": {"name": obj["name"], "arguments": args}}
