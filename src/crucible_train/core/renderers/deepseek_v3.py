# ruff: noqa: RUF001, RUF002, RUF003  # the format's tokens use fullwidth bars (U+FF5C) on purpose
"""DeepSeek V3 chat formats: V3.1 (``deepseekv3``, ``deepseekv3_thinking``) and the older
DeepSeek-V3 / V3-0324 format (``deepseekv3_0324``).

Both formats open with a BOS, then every system message joined by ``\\n\\n`` (no header),
then ``<｜User｜>{content}`` turns and assistant turns ending ``<｜end▁of▁sentence｜>``;
tool calls sit between ``<｜tool▁calls▁begin｜>`` and ``<｜tool▁calls▁end｜>`` before that end
token. Neither template declares tools: callers describe them in the system prompt and
``tools`` is ignored.

V3.1 (``deepseek_v3_1.jinja``): assistant turns after a user message
``<｜Assistant｜></think>{content}<｜end▁of▁sentence｜>`` (reasoning dropped, inline text up
to ``</think>`` removed), calls ``<｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{arguments}
<｜tool▁call▁end｜>``, results ``<｜tool▁output▁begin｜>{content}<｜tool▁output▁end｜>``, and
an assistant turn after a tool result (or another assistant turn) with no header at all.

V3-0324 (``deepseek_v3_0324.jinja``): every user turn is followed by ``<｜Assistant｜>``,
calls are ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\\n```json\\n{arguments}\\n```
<｜tool▁call▁end｜>`` joined by ``\\n``, a run of results is wrapped
``<｜tool▁outputs▁begin｜>…<｜tool▁outputs▁end｜>`` (results joined by ``\\n``), and there is
no reasoning at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text

__all__ = ["DeepSeekV3Renderer", "DeepSeekV3ThinkingRenderer", "DeepSeekV3_0324Renderer"]

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
_OUTPUTS_BEGIN = "<｜tool▁outputs▁begin｜>"
_OUTPUTS_END = "<｜tool▁outputs▁end｜>"
_OUTPUT_BEGIN = "<｜tool▁output▁begin｜>"
_OUTPUT_END = "<｜tool▁output▁end｜>"
_TOOL_MARKERS = (_CALLS_BEGIN, _CALLS_END, _CALL_BEGIN, _CALL_END, _SEP)
_CALL_RE = re.compile(
    re.escape(_CALL_BEGIN) + "(.*?)" + re.escape(_SEP) + "(.*?)" + re.escape(_CALL_END),
    re.DOTALL,
)
_FENCE_OPEN = "\n```json\n"
_FENCE_CLOSE = "\n```"
_CALL_0324_RE = re.compile(
    re.escape(_CALL_BEGIN)
    + "function"
    + re.escape(_SEP)
    + "(.*?)"
    + re.escape(_FENCE_OPEN)
    + "(.*?)"
    + re.escape(_FENCE_CLOSE + _CALL_END),
    re.DOTALL,
)


class _DeepSeekRenderer(Renderer):
    """What the DeepSeek V3 formats share: system block, stop token, reasoning checks,
    and parsing of a ``<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>`` section."""

    #: Whether a final assistant turn after a user message can carry its reasoning.
    thinking = False

    def _system_pieces(self, messages: list[Message]) -> list[Piece]:
        """The BOS and every system message joined by ``\\n\\n`` (the templates hoist them)."""
        pieces = [Piece(_BOS, special=True, bos=True)]
        first_system = True
        for i, m in enumerate(messages):
            if m.role == "system":
                if not first_system:
                    pieces.append(Piece("\n\n", message=i))
                pieces.append(Piece(message_text(m), message=i, output=True))
                first_system = False
        return pieces

    def get_stop_sequences(self) -> list[int]:
        """The ``<｜end▁of▁sentence｜>`` token."""
        return [self._stop_token(_EOS)]

    def _writes_final_reasoning(self, messages: list[Message]) -> bool:
        """Only the thinking variant, and only right after a user message."""
        return self.thinking and _after_user(messages, len(messages) - 1)

    reasoning_hint = (
        "use deepseekv3_thinking with the reasoning right after a user message, or "
        "remove reasoning_content from that turn"
    )

    @staticmethod
    def _parse_section(
        text: str,
        call_re: re.Pattern[str],
        separator: str,
        make_call: Callable[[re.Match[str]], dict[str, Any] | None],
    ) -> tuple[str, list[dict[str, Any]]] | None:
        """Content and calls of ``text`` (content, then an optional tool-call section);
        ``None`` when the section is malformed."""
        content, sep, section = text.partition(_CALLS_BEGIN)
        if any(marker in content for marker in _TOOL_MARKERS):
            return None
        calls: list[dict[str, Any]] = []
        if sep:
            if not section.endswith(_CALLS_END):
                return None
            section = section[: -len(_CALLS_END)]
            pos = 0
            for k, match in enumerate(call_re.finditer(section)):
                call = make_call(match)
                if match.start() != pos + (len(separator) if k else 0) or call is None:
                    return None
                if k and section[pos : match.start()] != separator:
                    return None
                calls.append(call)
                pos = match.end()
            if pos != len(section) or not calls:
                return None
        return content, calls


def _after_user(msgs: Sequence[Message], index: int) -> bool:
    """Whether the nearest non-system message before ``index`` is a user message (the
    templates hoist system messages, so they do not interrupt a user → assistant turn)."""
    for m in reversed(msgs[:index]):
        if m.role != "system":
            return m.role == "user"
    return False


class DeepSeekV3Renderer(_DeepSeekRenderer):
    """DeepSeek V3.1 non-thinking (the template with ``thinking=False``).

    The generation prompt after a user message is ``<｜Assistant｜></think>``; after a tool
    result (or an assistant turn) the template adds nothing and neither does this renderer.
    ``reasoning_content`` is dropped from history, as in the template; a *trained* final
    turn with reasoning is refused (train it with ``deepseekv3_thinking``).
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

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        del tools  # the template declares no tools
        pieces = self._system_pieces(messages)
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

    def _inline_reasoning(self, messages: list[Message]) -> bool:
        """Text before ``</think>`` in the final turn's content (the template strips it)."""
        last = messages[-1]
        return (
            last.reasoning_content is None
            and not last.tool_calls
            and _END_THINK in message_text(last)
            and _after_user(messages, len(messages) - 1)
        )

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
        parsed = self._parse_section(
            text, _CALL_RE, "", lambda match: _parse_call(match.group(1), match.group(2))
        )
        if parsed is None:
            return message, False
        message["content"], calls = parsed
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
    a supervised example extends its prompt. A trained final turn with reasoning after a
    tool result is refused: the format has no think block there.
    """

    name = "deepseekv3_thinking"
    thinking = True


class DeepSeekV3_0324Renderer(_DeepSeekRenderer):  # noqa: N801 - the model's version tag
    """DeepSeek-V3 (Dec 2024) and V3-0324, as ``deepseek_v3_0324.jinja`` renders them.

    The generation prompt after a user message is what the user turn already ends
    with (``<｜Assistant｜>``); after tool results it is ``<｜tool▁outputs▁end｜>``; after
    anything else ``<｜Assistant｜>`` is added. The format has no reasoning:
    ``reasoning_content`` is dropped from history, and a trained final turn with it is
    refused. Content is written verbatim (a ``<think>`` in it is plain text).

    Deliberate difference: in a supervised example whose *final* assistant turn follows
    neither a user message nor a tool result (e.g. two assistant turns in a row), the
    turn gets the ``<｜Assistant｜>`` header the generation prompt ends with; the template
    writes none there.
    """

    name = "deepseekv3_0324"
    special_token_texts = (
        _BOS,
        _EOS,
        _USER,
        _ASSISTANT,
        *_TOOL_MARKERS,
        _OUTPUTS_BEGIN,
        _OUTPUTS_END,
        _OUTPUT_BEGIN,
        _OUTPUT_END,
    )

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        del tools  # the template declares no tools
        pieces = self._system_pieces(messages)
        n = len(messages)
        # The template's state: last message was a user turn / a tool result; the next
        # result opens a new <｜tool▁outputs▁begin｜> block.
        last_user = is_tool = False
        output_first = True
        for i, m in enumerate(messages):
            if m.role == "user":
                pieces += [
                    Piece(_USER, True, i),
                    Piece(message_text(m), message=i, output=True),
                    Piece(_ASSISTANT, True, i + 1 if i + 1 < n else None),
                ]
                last_user, is_tool = True, False
            elif m.role == "tool":
                if output_first:
                    pieces += [Piece(_OUTPUTS_BEGIN, True, i), Piece(_OUTPUT_BEGIN, True, i)]
                else:
                    pieces += [Piece("\n", message=i), Piece(_OUTPUT_BEGIN, True, i)]
                pieces += [
                    Piece(message_text(m), message=i, output=True),
                    Piece(_OUTPUT_END, True, i, True),
                ]
                last_user, is_tool, output_first = False, True, False
            elif m.role == "assistant":
                if is_tool:
                    pieces.append(Piece(_OUTPUTS_END, True, i))
                elif not last_user and not generation and i == n - 1:
                    pieces.append(Piece(_ASSISTANT, True, i))  # the deliberate difference
                pieces += self._assistant(m, i)
                if m.tool_calls:
                    output_first = True
                last_user = is_tool = False
        if is_tool:
            pieces.append(Piece(_OUTPUTS_END, True))
        elif generation and not last_user:
            pieces.append(Piece(_ASSISTANT, True))
        return pieces

    @staticmethod
    def _assistant(m: Message, i: int) -> list[Piece]:
        """One assistant turn's output: content, tool calls, EOS."""
        pieces = [Piece(message_text(m), message=i, output=True)]
        if m.tool_calls:
            pieces.append(Piece(_CALLS_BEGIN, True, i, True))
            for k, call in enumerate(m.tool_calls):
                if k:
                    pieces.append(Piece("\n", message=i, output=True))
                pieces += [
                    Piece(_CALL_BEGIN, True, i, True),
                    Piece("function", message=i, output=True),
                    Piece(_SEP, True, i, True),
                    Piece(
                        f"{call.name}{_FENCE_OPEN}{call.arguments}{_FENCE_CLOSE}",
                        message=i,
                        output=True,
                    ),
                    Piece(_CALL_END, True, i, True),
                ]
            pieces.append(Piece(_CALLS_END, True, i, True))
        pieces.append(Piece(_EOS, True, i, True))
        return pieces

    reasoning_hint = (
        "DeepSeek-V3 / V3-0324 has no reasoning format; remove reasoning_content from "
        "that turn, or train DeepSeek-V3.1 with deepseekv3_thinking"
    )

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Text and the tool-call section of a sampled turn (no reasoning in this format)."""
        text, ok = self._decode_turn(tokens, _EOS)
        if text is None or not ok:
            return {"role": "assistant", "content": text or ""}, False
        message: dict[str, Any] = {"role": "assistant", "content": text}
        parsed = self._parse_section(
            text, _CALL_0324_RE, "\n", lambda match: _parse_call(match.group(1), match.group(2))
        )
        if parsed is None:
            return message, False
        message["content"], calls = parsed
        if calls:
            message["tool_calls"] = calls
        return message, True
