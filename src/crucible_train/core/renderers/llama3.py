"""``llama3``: the Llama 3.1 / 3.2 / 3.3 Instruct chat format, as the official templates render."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text
from crucible_train.errors import InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["DEFAULT_DATE_STRING", "Llama3Renderer"]

_BOS = "<|begin_of_text|>"
_START = "<|start_header_id|>"
_END = "<|end_header_id|>"
_EOT = "<|eot_id|>"
#: The date the official 3.1/3.3 templates always write into the system turn.
DEFAULT_DATE_STRING = "26 Jul 2024"
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
    """Llama 3.1/3.2/3.3: date-stamped system turn, ``content|trim``, JSON tool calls.

    Tools (OpenAI specs) go into the first user turn, as the template's default
    ``tools_in_user_message`` does; an assistant turn with a tool call renders only
    ``{"name": ..., "parameters": ...}`` (its text is dropped, as in the template) and
    may hold one call; tool results use the ``ipython`` role with JSON-quoted content.
    Reasoning is not part of the format and is dropped.

    The system turn states ``Today Date: {date_string}``. The 3.1/3.3 templates
    always write ``26 Jul 2024`` (the default). The 3.2 template writes today's date
    (``strftime_now("%d %b %Y")``) unless ``date_string`` is passed: the default pins
    it for reproducible training data; pass today's date to match the template at
    inference time. Otherwise the three templates render the same (no built-in tools).

    Args:
        tokenizer: the model's tokenizer.
        date_string: the ``Today Date`` text, e.g. ``"01 Jun 2025"``.
    """

    name = "llama3"
    special_token_texts = (_BOS, _START, _END, _EOT)
    reasoning_hint = "Llama 3 has no reasoning format; remove reasoning_content from that turn"

    def _writes_final_reasoning(self, messages: list[Message]) -> bool:
        """The format has no reasoning."""
        return False

    def __init__(self, tokenizer: Tokenizer, *, date_string: str = DEFAULT_DATE_STRING) -> None:
        super().__init__(tokenizer)
        self._date_string = date_string
        self._date_block = f"Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n"

    @property
    def date_string(self) -> str:
        """The ``Today Date`` the system turn states."""
        return self._date_string

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
            Piece(("Environment: ipython\n" if tools else "") + self._date_block, message=sys_index)
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
        # A turn that starts like a call object but does not parse as one is a broken
        # tool call, not prose: report it so callers can penalise or retry it.
        looks_like_call = _CALL_START.match(text) is not None
        return {"role": "assistant", "content": text}, ok and not looks_like_call


_CALL_START = re.compile(r'\s*\{\s*"name"\s*:')


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
