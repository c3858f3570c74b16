"""Qwen3 chat formats: hybrid thinking, thinking disabled, Instruct-2507 and Thinking-2507."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer, split_at_stop
from crucible_train.core.renderers.messages import Message, message_text
from crucible_train.errors import InvalidDataError

__all__ = [
    "Qwen3DisableThinkingRenderer",
    "Qwen3InstructRenderer",
    "Qwen3Renderer",
    "Qwen3Thinking2507Renderer",
]

_IM_START = "<|im_start|>"
_IM_END = "<|im_end|>"
_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
_CALL_RE = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)


def _spec(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI tool entry; a bare function spec is wrapped."""
    return dict(tool) if "function" in tool else {"type": "function", "function": dict(tool)}


class Qwen3Renderer(Renderer):
    """Qwen3 hybrid thinking (Qwen3-8B/32B/30B-A3B), matching the official template.

    Assistant turns after the last user query are framed ``<think>\\n{r}\\n</think>\\n\\n``
    (the final one even without reasoning); earlier turns lose their reasoning.
    Consecutive tool results share one ``user`` turn. The generation prompt is
    ``<|im_start|>assistant\\n``: the model opens ``<think>`` itself.
    """

    name = "qwen3"
    special_token_texts = (
        _IM_START,
        _IM_END,
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
    )
    #: Whether assistant turns carry ``<think>`` blocks at all.
    frames_thinking = True
    #: Whether the generation prompt closes an empty think block.
    disables_thinking = False
    #: Whether the generation prompt opens the think block (``<think>\\n``), so that
    #: every framed turn's ``<think>\\n`` is header, never trained.
    opens_thinking = False

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        pieces: list[Piece] = []
        n = len(messages)
        start = 0
        if tools:
            idx = 0 if n and messages[0].role == "system" else None
            pieces += [Piece(_IM_START, True, idx), Piece("system\n", message=idx)]
            if idx is not None:
                pieces.append(Piece(message_text(messages[0]) + "\n\n", message=idx, output=True))
                start = 1
            specs = "".join("\n" + json.dumps(_spec(t), ensure_ascii=False) for t in tools)
            pieces.append(Piece(_TOOLS_HEAD + specs + _TOOLS_TAIL, message=idx))
            pieces.append(Piece(_IM_END, True, idx, output=True))
        last_query = _last_query_index(messages)
        for i in range(start, n):
            m = messages[i]
            # The template ends every turn with "<|im_end|>\n"; the newline is put in
            # the next header so a trained turn ends exactly at its stop token.
            nl = "\n" if pieces else ""
            if m.role == "tool":
                if i == 0 or messages[i - 1].role != "tool":
                    pieces += [Piece(nl, message=i), Piece(_IM_START, True, i)]
                    pieces.append(Piece("user", message=i))
                pieces += [
                    Piece("\n", message=i, output=True),
                    Piece("<tool_response>", True, i, True),
                    Piece("\n" + message_text(m) + "\n", message=i, output=True),
                    Piece("</tool_response>", True, i, True),
                ]
                if i == n - 1 or messages[i + 1].role != "tool":
                    pieces.append(Piece(_IM_END, True, i, True))
                continue
            pieces += [Piece(nl, message=i), Piece(_IM_START, True, i)]
            pieces.append(Piece(m.role + "\n", message=i))
            if m.role == "assistant":
                pieces += self._assistant(m, i, framed_turn=i > last_query, last=i == n - 1)
            else:
                pieces.append(Piece(message_text(m), message=i, output=True))
            pieces.append(Piece(_IM_END, True, i, True))
        if generation:
            nl = "\n" if pieces else ""
            pieces += [Piece(nl), Piece(_IM_START, True), Piece("assistant\n")]
            if self.disables_thinking:
                pieces += _think_block("", None, output=False)
            if self.opens_thinking:
                pieces += [Piece("<think>", True), Piece("\n")]
        return pieces

    def _assistant(self, m: Message, i: int, *, framed_turn: bool, last: bool) -> list[Piece]:
        """Body of an assistant turn (everything between its header and ``<|im_end|>``)."""
        content = message_text(m)
        reasoning = m.reasoning_content
        if reasoning is None and "</think>" in content:
            # The template also accepts reasoning inlined in the content.
            reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
            content = content.split("</think>")[-1].lstrip("\n")
        reasoning = reasoning or ""
        pieces: list[Piece] = []
        body = content
        if self.frames_thinking and framed_turn and (last or reasoning):
            # A produced final turn without reasoning still gets the empty block; with
            # thinking disabled that block is the generation prompt's, so untrained.
            in_prompt = self.disables_thinking and last and not reasoning
            pieces += _think_block(
                reasoning.strip("\n"), i, output=not in_prompt, opened=self.opens_thinking
            )
            body = content.lstrip("\n")
        pieces.append(Piece(body, message=i, output=True))
        for k, call in enumerate(m.tool_calls):
            if k > 0 or content:
                pieces.append(Piece("\n", message=i, output=True))
            args = json.dumps(call.arguments_dict(), ensure_ascii=False)
            pieces += [
                Piece("<tool_call>", True, i, True),
                Piece(
                    f'\n{{"name": "{call.name}", "arguments": {args}}}\n', message=i, output=True
                ),
                Piece("</tool_call>", True, i, True),
            ]
        return pieces

    def _check_supervised(self, messages: list[Message]) -> None:
        """With thinking disabled, a trained final turn cannot carry reasoning."""
        if not self.disables_thinking or not messages or messages[-1].role != "assistant":
            return
        last = messages[-1]
        if last.reasoning_content or "</think>" in message_text(last):
            raise InvalidDataError(
                f"{self.name} prompts with an empty think block; the final assistant turn "
                "has reasoning, use the 'qwen3' renderer to train on it"
            )
        if not any(m.role == "user" for m in messages[:-1]):
            # The template frames no turn without a user message, but the prompt
            # always ends in the empty think block: the example would not extend it.
            raise InvalidDataError(
                f"{self.name} cannot train a final assistant turn with no user message before it"
            )

    def get_stop_sequences(self) -> list[int]:
        """The ``<|im_end|>`` token."""
        return [self._stop_token(_IM_END)]

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Reasoning, text and ``<tool_call>`` blocks of a sampled turn."""
        text, ok = self._decode_turn(tokens, _IM_END)
        if text is None or not ok:
            return {"role": "assistant", "content": text or ""}, False
        message: dict[str, Any] = {"role": "assistant", "content": text}
        reasoning = ""
        if "</think>" in text:
            think, _, text = text.partition("</think>")
            if think.startswith("<think>"):
                think = think[len("<think>") :]
            if "<think>" in think:
                return message, False
            reasoning = think.strip("\n")
            text = text.lstrip("\n")
        elif "<think>" in text:
            return message, False  # reasoning never closed
        content, sep, calls_text = text.partition("<tool_call>")
        calls: list[dict[str, Any]] = []
        if sep:
            if content:
                # One "\n" separates text from the first call.
                content = content[:-1] if content.endswith("\n") else content
            calls_text = "<tool_call>" + calls_text
            pos = 0
            for k, match in enumerate(_CALL_RE.finditer(calls_text)):
                gap = calls_text[pos : match.start()]
                if gap != ("\n" if k else ""):
                    return message, False
                call = _parse_call(match.group(1))
                if call is None:
                    return message, False
                calls.append(call)
                pos = match.end()
            if pos != len(calls_text) or not calls:
                return message, False
        message["content"] = content
        if reasoning:
            message["reasoning_content"] = reasoning
        if calls:
            message["tool_calls"] = calls
        return message, True


def _last_query_index(messages: Sequence[Message]) -> int:
    """Index of the last user message that is not a wrapped tool response (the
    template's ``last_query_index``); ``len(messages) - 1`` when there is none."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.role != "user":
            continue
        text = message_text(m)
        if not (text.startswith("<tool_response>") and text.endswith("</tool_response>")):
            return i
    return len(messages) - 1


def _think_block(
    reasoning: str, index: int | None, *, output: bool, opened: bool = False
) -> list[Piece]:
    """``<think>\\n{reasoning}\\n</think>\\n\\n``; with ``opened`` the leading
    ``<think>\\n`` is header (the generation prompt supplies it, so it is never trained)."""
    head = output and not opened
    return [
        Piece("<think>", True, index, head),
        Piece("\n", message=index, output=head),
        Piece(f"{reasoning}\n", message=index, output=output),
        Piece("</think>", True, index, output),
        Piece("\n\n", message=index, output=output),
    ]


def _parse_call(raw: str) -> dict[str, Any] | None:
    """An OpenAI tool call from ``{"name": ..., "arguments": {...}}`` text, else ``None``."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments")
    if not isinstance(args, dict):
        return None
    return {
        "type": "function",
        "function": {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)},
    }


class Qwen3DisableThinkingRenderer(Qwen3Renderer):
    """Qwen3 hybrid with ``enable_thinking=False``: the prompt ends in an empty think block."""

    name = "qwen3_disable_thinking"
    disables_thinking = True


class Qwen3InstructRenderer(Qwen3Renderer):
    """Qwen3 Instruct-2507: the Qwen3 skeleton without any ``<think>`` blocks.

    Reasoning in the input is dropped (the model does not think).
    """

    name = "qwen3_instruct"
    frames_thinking = False
    reasoning_hint = (
        "Instruct-2507 models never think; remove reasoning_content from that turn, or "
        "train a thinking model with qwen3 or qwen3_thinking"
    )

    def _writes_final_reasoning(self, messages: list[Message]) -> bool:
        """Instruct-2507 writes no think blocks."""
        return False

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Text and ``<tool_call>`` blocks; ``<think>`` text is kept as content."""
        message, ok = super().parse_response(tokens)
        reasoning = message.pop("reasoning_content", None)
        if reasoning is not None:
            # The instruct model has no think block: re-parse with the text as written.
            body, ok2 = split_at_stop(tokens, self._stop_token(_IM_END))
            text = self._safe_decode(body) or ""
            return {"role": "assistant", "content": text}, ok2 and "<tool_call>" not in text
        return message, ok


class Qwen3Thinking2507Renderer(Qwen3Renderer):
    """Qwen3 Thinking-2507 (``Qwen3-*-Thinking-2507``): the model always thinks.

    Same turns as the hybrid template, but the generation prompt already opens the
    think block: ``<|im_start|>assistant\\n<think>\\n``. So a sampled turn starts
    *inside* its reasoning, and in supervised examples the ``<think>\\n`` of every
    framed assistant turn is header (untrained under every mode but ``all_tokens``);
    training starts at the reasoning text, so the prompt of the last message is
    exactly the untrained prefix. A final turn with no reasoning trains
    ``\\n</think>\\n\\n{answer}``: the model learns to close the block at once.

    Differences from the official template (both deliberate): a list of text parts
    is rendered as its text (the template renders any non-string content as empty),
    and a supervised example ends at its ``<|im_end|>`` (the template adds ``\\n``).
    Token ids can differ from the template's at the one place training starts: the
    prompt's ``\\n`` after ``<think>`` is encoded apart from the trained text (the
    template encodes ``<think>\\n\\n</think>`` with one ``\\n\\n`` token).
    """

    name = "qwen3_thinking"
    opens_thinking = True

    def _check_supervised(self, messages: list[Message]) -> None:
        """A trained final assistant turn must follow a user query (else the template
        does not open its think block, but the generation prompt always does)."""
        if not messages or messages[-1].role != "assistant":
            return
        if _last_query_index(messages) == len(messages) - 1:
            raise InvalidDataError(
                f"{self.name} cannot train a final assistant turn with no user message "
                "(user query) before it"
            )

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Reasoning up to ``</think>``, then text and ``<tool_call>`` blocks.

        The prompt opened the think block, so the sample starts inside it (a leading
        ``<think>`` is tolerated). A turn that never writes ``</think>`` did not finish
        thinking: ``ok=False`` with the decoded text as content.
        """
        text, ok = self._decode_turn(tokens, _IM_END)
        if text is None or not ok or "</think>" not in text:
            return {"role": "assistant", "content": text or ""}, False
        return super().parse_response(tokens)
