"""gpt-oss (OpenAI Harmony) chat format: channels, reasoning effort, TypeScript tool namespace.

Matches the official gpt-oss chat template (the later HF revision): a built-in ``system``
message with the knowledge cutoff, the current date and ``Reasoning: {effort}``; the
caller's system message becomes a ``developer`` message (``# Instructions``) together with
the tools, declared as a TypeScript-like ``namespace functions``; assistant answers go to the
``final`` channel, reasoning to ``analysis``; tool calls are ``to=functions.NAME`` messages on
the ``commentary`` channel ending ``<|call|>``; a produced final answer ends ``<|return|>``.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.core.renderers.base import Piece, Renderer
from crucible_train.core.renderers.messages import Message, message_text
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = [
    "REASONING_EFFORTS",
    "GptOssHighReasoningRenderer",
    "GptOssLowReasoningRenderer",
    "GptOssMediumReasoningRenderer",
    "GptOssRenderer",
]

REASONING_EFFORTS: tuple[str, ...] = ("low", "medium", "high")
#: The date the reference renderings pin ``strftime_now`` to.
DEFAULT_DATE = "2025-06-01"
DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."

_START = "<|start|>"
_END = "<|end|>"
_MESSAGE = "<|message|>"
_CHANNEL = "<|channel|>"
_RETURN = "<|return|>"
_CALL = "<|call|>"
_CONSTRAIN = "<|constrain|>"
_CHANNELS_LINE = (
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
)
_TOOLS_LINE = "\nCalls to these tools must go to the commentary channel: 'functions'."
_FORBIDDEN = ("<|channel|>analysis<|message|>", "<|channel|>final<|message|>")
_HEADER_RE = re.compile(
    r"^(?: to=(?P<to1>\S+))?<\|channel\|>(?P<channel>[a-z]+)"
    r"(?: to=(?P<to2>\S+))?(?: ?(?:<\|constrain\|>)?(?P<ctype>[\w-]+))?$"
)


def _tojson(value: Any) -> str:
    """transformers' ``tojson`` filter (no HTML escaping, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False)


def _ts_type(spec: Mapping[str, Any]) -> str:
    """The template's ``render_typescript_type`` for one JSON-schema node."""
    kind = spec.get("type")
    null = " | null" if spec.get("nullable") else ""
    if kind == "array":
        items = spec.get("items")
        if not items:
            return "any[]" + null
        simple = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean"}
        inner_kind = items.get("type") if isinstance(items, Mapping) else None
        if isinstance(inner_kind, str) and inner_kind in simple:
            return simple[inner_kind] + "[]" + null
        inner = _ts_type(items) if isinstance(items, Mapping) else "any"
        if inner == "object | object" or len(inner) > 50:
            return "any[]" + null
        return inner + "[]" + null
    if isinstance(kind, list | tuple) and kind:
        return " | ".join(str(k) for k in kind) if len(kind) > 1 else str(kind[0])
    if spec.get("oneOf"):
        variants = list(spec["oneOf"])
        if len(variants) > 1 and any(v.get("type") == "object" for v in variants):
            return "any"
        out = []
        for k, variant in enumerate(variants):
            text = _ts_type(variant)
            if variant.get("description"):
                text += "// " + str(variant["description"])
            if "default" in variant:
                text += "                    // default: " + _tojson(variant["default"])
            if k < len(variants) - 1:
                text += " | \n"
            out.append(text)
        return "".join(out)
    if kind == "string":
        if spec.get("enum"):
            return '"' + '" | "'.join(str(e) for e in spec["enum"]) + '"'
        return "string" + null
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "object":
        props = spec.get("properties")
        if not props:
            return "object"
        required = spec.get("required") or []
        fields = []
        for name, sub in props.items():
            opt = "" if name in required else "?"
            fields.append(f"{name}{opt}: \n                {_ts_type(sub)}")
        return "{\n" + ", ".join(fields) + "}"
    return "any"


def _tool_namespace(tools: Sequence[Mapping[str, Any]]) -> str:
    """The template's ``render_tool_namespace("functions", tools)``."""
    out = ["## functions\n\nnamespace functions {\n\n"]
    for tool in tools:
        fn = tool.get("function", tool)
        out.append(f"// {fn.get('description', '')}\ntype {fn['name']} = ")
        params = fn.get("parameters") or {}
        props = params.get("properties")
        if not props:
            out.append("() => any;\n\n")
            continue
        required = params.get("required") or []
        out.append("(_: {\n")
        for name, spec in props.items():
            if spec.get("description"):
                out.append(f"// {spec['description']}\n")
            out.append(name + ("" if name in required else "?") + ": " + _ts_type(spec))
            if "default" in spec:
                if spec.get("enum"):
                    out.append(", // default: " + str(spec["default"]))
                elif spec.get("oneOf"):
                    out.append("// default: " + str(spec["default"]))
                else:
                    out.append(", // default: " + _tojson(spec["default"]))
            out.append(",\n")
        out.append("}) => any;\n\n")
    out.append("} // namespace functions")
    return "".join(out)


class GptOssRenderer(Renderer):
    """gpt-oss (Harmony), matching the official chat template.

    Args:
        tokenizer: the o200k_harmony tokenizer.
        reasoning_effort: ``low``, ``medium`` or ``high`` (the ``Reasoning:`` line).
        current_date: the ``Current date:`` (``YYYY-MM-DD`` or a date); the template
            prints today's date, so it is pinned here, by default to the reference date.
        model_identity: the first line of the system message.

    History: an assistant answer keeps only its ``final`` message (its reasoning is
    dropped); a tool-call turn keeps its reasoning (or, as the template does, its text)
    as an ``analysis`` message until a later assistant answer exists. Deliberate
    difference: in a supervised example the trained last answer does not count as that
    later answer, so the example's prefix is exactly the generation prompt.

    Raises:
        ConfigurationError: unknown ``reasoning_effort`` or a malformed ``current_date``.
    """

    name = "gpt_oss"
    special_token_texts = (_START, _END, _MESSAGE, _CHANNEL, _RETURN, _CALL, _CONSTRAIN)
    #: Default ``reasoning_effort`` of this registry entry.
    default_effort = "medium"

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        reasoning_effort: str | None = None,
        current_date: str | datetime.date = DEFAULT_DATE,
        model_identity: str = DEFAULT_IDENTITY,
    ) -> None:
        super().__init__(tokenizer)
        effort = reasoning_effort or self.default_effort
        if effort not in REASONING_EFFORTS:
            raise ConfigurationError(
                f"reasoning_effort is {effort!r}; valid values: {', '.join(REASONING_EFFORTS)}"
            )
        if isinstance(current_date, str):
            try:
                current_date = datetime.date.fromisoformat(current_date)
            except ValueError:
                raise ConfigurationError(
                    f"current_date must be YYYY-MM-DD, got {current_date!r}"
                ) from None
        self.reasoning_effort = effort
        self.current_date = current_date.strftime("%Y-%m-%d")
        self.model_identity = model_identity

    # --- rendering --------------------------------------------------------------------

    def _system_text(self, tools: bool) -> str:
        return (
            f"{self.model_identity}\nKnowledge cutoff: 2024-06\n"
            f"Current date: {self.current_date}\n\nReasoning: {self.reasoning_effort}\n\n"
            + _CHANNELS_LINE
            + (_TOOLS_LINE if tools else "")
        )

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        n = len(messages)
        pieces = [
            Piece(_START, True),
            Piece("system"),
            Piece(_MESSAGE, True),
            Piece(self._system_text(bool(tools))),
            Piece(_END, True),
        ]
        start = 0
        developer = ""
        if n and messages[0].role == "system":
            developer = message_text(messages[0])
            start = 1
        if developer or tools:
            idx = 0 if developer else None
            pieces += [Piece(_START, True, idx), Piece("developer", message=idx)]
            pieces.append(Piece(_MESSAGE, True, idx))
            if developer:
                pieces.append(Piece(f"# Instructions\n\n{developer}\n\n", message=0, output=True))
            if tools:
                pieces.append(Piece("# Tools\n\n" + _tool_namespace(tools), message=idx))
            pieces.append(Piece(_END, True, idx, output=idx is not None))
        # In a supervised example the trained last answer is not a "later answer".
        horizon = n if generation else n - 1
        last_call: str | None = None
        for i in range(start, n):
            m = messages[i]
            if m.role == "system":
                raise InvalidDataError(
                    f"messages[{i}] is a system message after the first message; gpt-oss "
                    "has one developer message (the template would silently drop it)"
                )
            if m.role == "user":
                pieces += _block(i, "user", message_text(m), _END)
            elif m.role == "tool":
                if last_call is None:
                    raise InvalidDataError(
                        f"messages[{i}] is a tool result with no earlier assistant tool call"
                    )
                pieces += [
                    Piece(_START, True, i),
                    Piece(f"functions.{last_call} to=assistant", message=i),
                    Piece(_CHANNEL, True, i),
                    Piece("commentary", message=i),
                    Piece(_MESSAGE, True, i),
                    Piece(_tojson(message_text(m)), message=i, output=True),
                    Piece(_END, True, i, True),
                ]
            elif m.tool_calls:
                later_answer = any(
                    f.role == "assistant" and not f.tool_calls for f in messages[i + 1 : horizon]
                )
                pieces += self._call_turn(m, i, keep_analysis=not later_answer)
                last_call = m.tool_calls[0].name
            else:
                last = i == n - 1 and not generation
                pieces += self._answer(m, i, last=last)
                last_call = None
        if generation:
            pieces += [Piece(_START, True), Piece("assistant")]
        return pieces

    @staticmethod
    def _check_text(m: Message, i: int, text: str | None) -> None:
        if text and any(tag in text for tag in _FORBIDDEN):
            raise InvalidDataError(
                f"messages[{i}] contains <|channel|> tags; pass reasoning as "
                "reasoning_content and the answer as content"
            )

    def _call_turn(self, m: Message, i: int, *, keep_analysis: bool) -> list[Piece]:
        content = message_text(m)
        self._check_text(m, i, content)
        self._check_text(m, i, m.reasoning_content)
        if len(m.tool_calls) > 1:
            raise InvalidDataError(
                f"messages[{i}] has {len(m.tool_calls)} tool calls; gpt-oss renders one call "
                "per assistant message (split them into consecutive assistant messages)"
            )
        if content and m.reasoning_content:
            raise InvalidDataError(
                f"messages[{i}] has both content and reasoning with a tool call; gpt-oss "
                "renders one analysis message, put it in one or the other"
            )
        pieces = [Piece(_START, True, i), Piece("assistant", message=i)]
        analysis = content or m.reasoning_content
        if analysis and keep_analysis:
            pieces += [
                Piece(_CHANNEL, True, i, True),
                Piece("analysis", message=i, output=True),
                Piece(_MESSAGE, True, i, True),
                Piece(analysis, message=i, output=True),
                Piece(_END, True, i, True),
                Piece(_START, True, i, True),
                Piece("assistant", message=i, output=True),
            ]
        call = m.tool_calls[0]
        pieces += [
            Piece(f" to=functions.{call.name}", message=i, output=True),
            Piece(_CHANNEL, True, i, True),
            Piece("commentary json", message=i, output=True),
            Piece(_MESSAGE, True, i, True),
            Piece(_tojson(call.arguments_dict()), message=i, output=True),
            Piece(_CALL, True, i, True),
        ]
        return pieces

    def _answer(self, m: Message, i: int, *, last: bool) -> list[Piece]:
        content = message_text(m)
        self._check_text(m, i, content)
        self._check_text(m, i, m.reasoning_content)
        pieces = [Piece(_START, True, i), Piece("assistant", message=i)]
        if last and m.reasoning_content is not None:
            pieces += [
                Piece(_CHANNEL, True, i, True),
                Piece("analysis", message=i, output=True),
                Piece(_MESSAGE, True, i, True),
                Piece(m.reasoning_content, message=i, output=True),
                Piece(_END, True, i, True),
                Piece(_START, True, i, True),
                Piece("assistant", message=i, output=True),
            ]
        pieces += [
            Piece(_CHANNEL, True, i, True),
            Piece("final", message=i, output=True),
            Piece(_MESSAGE, True, i, True),
            Piece(content, message=i, output=True),
            Piece(_RETURN if last else _END, True, i, True),
        ]
        return pieces

    # --- sampling ---------------------------------------------------------------------

    def get_stop_sequences(self) -> list[int]:
        """The ``<|return|>`` and ``<|call|>`` tokens."""
        return [self._stop_token(_RETURN), self._stop_token(_CALL)]

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """Analysis (as ``reasoning_content``), final text and a ``functions.*`` call.

        The turn continues the ``<|start|>assistant`` header; it must hold exactly one
        stop token, ``<|return|>`` after a ``final`` message or ``<|call|>`` after a
        ``to=functions.NAME`` commentary message, optionally preceded by one ``analysis``
        message. Anything else gives ``ok=False`` with the decoded text.
        """
        stops = self.get_stop_sequences()
        toks = [int(t) for t in tokens]
        positions = [k for k, t in enumerate(toks) if t in stops]
        body = toks[: positions[0]] if positions else toks
        text = self._safe_decode(body)
        if text is None:
            return {"role": "assistant", "content": ""}, False
        failed: tuple[dict[str, Any], bool] = ({"role": "assistant", "content": text}, False)
        if len(positions) != 1:
            return failed
        parsed = _parse_messages(text)
        if parsed is None:
            return failed
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        if len(parsed) == 2:
            analysis = parsed[0]
            if analysis[0] != "analysis" or analysis[1] is not None:
                return failed
            if analysis[2]:
                message["reasoning_content"] = analysis[2]
        elif len(parsed) != 1:
            return failed
        channel, recipient, body_text = parsed[-1]
        if toks[positions[0]] == stops[0]:
            if channel != "final" or recipient is not None:
                return failed
            message["content"] = body_text
            return message, True
        if channel != "commentary" or recipient is None or not recipient.startswith("functions."):
            return failed
        try:
            args = json.loads(body_text)
        except json.JSONDecodeError:
            return failed
        if not isinstance(args, dict):
            return failed
        fn = {"name": recipient[len("functions.") :], "arguments": _tojson(args)}
        message["tool_calls"] = [{"type": "function", "function": fn}]
        return message, True


def _block(i: int, role: str, text: str, end: str) -> list[Piece]:
    return [
        Piece(_START, True, i),
        Piece(role, message=i),
        Piece(_MESSAGE, True, i),
        Piece(text, message=i, output=True),
        Piece(end, True, i, True),
    ]


def _parse_messages(text: str) -> list[tuple[str, str | None, str]] | None:
    """``(channel, recipient, body)`` of each message of a sampled turn, else ``None``."""
    segments = text.split(_START)
    out: list[tuple[str, str | None, str]] = []
    for k, segment in enumerate(segments):
        if k > 0:
            if not segment.startswith("assistant"):
                return None
            segment = segment[len("assistant") :]
        if k < len(segments) - 1:
            if not segment.endswith(_END):
                return None
            segment = segment[: -len(_END)]
        header, sep, body = segment.partition(_MESSAGE)
        if not sep or _END in body or _MESSAGE in body:
            return None
        match = _HEADER_RE.match(header)
        if match is None:
            return None
        recipient = match.group("to1") or match.group("to2")
        out.append((match.group("channel"), recipient, body))
    return out


class GptOssLowReasoningRenderer(GptOssRenderer):
    """gpt-oss with ``Reasoning: low``."""

    name = "gpt_oss_low_reasoning"
    default_effort = "low"


class GptOssMediumReasoningRenderer(GptOssRenderer):
    """gpt-oss with ``Reasoning: medium`` (the template's default)."""

    name = "gpt_oss_medium_reasoning"
    default_effort = "medium"


class GptOssHighReasoningRenderer(GptOssRenderer):
    """gpt-oss with ``Reasoning: high``."""

    name = "gpt_oss_high_reasoning"
    default_effort = "high"
