"""Chat messages (OpenAI-style dicts validated into attrs) and the ``TrainOnWhat`` modes.

Renderers accept plain dicts so callers can pass OpenAI / HF-style conversations as
they are; :func:`to_message` validates them once, at the edge.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from crucible_train.errors import ConfigurationError, InvalidDataError

__all__ = [
    "VALID_ROLES",
    "Message",
    "ToolCall",
    "TrainOnWhat",
    "message_text",
    "to_message",
    "to_messages",
]

VALID_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


class TrainOnWhat(enum.StrEnum):
    """Which message outputs of a supervised example get weight 1.

    Headers (role markers, template boilerplate) are weighted only under ``ALL_TOKENS``;
    a BOS token is never weighted.
    """

    LAST_ASSISTANT_MESSAGE = "last_assistant_message"
    LAST_ASSISTANT_TURN = "last_assistant_turn"
    ALL_ASSISTANT_MESSAGES = "all_assistant_messages"
    ALL_MESSAGES = "all_messages"
    ALL_TOKENS = "all_tokens"
    ALL_USER_AND_SYSTEM_MESSAGES = "all_user_and_system_messages"
    CUSTOMIZED = "customized"

    @classmethod
    def parse(cls, value: str | TrainOnWhat) -> TrainOnWhat:
        """The mode named ``value``.

        Raises:
            ConfigurationError: ``value`` names no mode; the message lists the valid ones.
        """
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ConfigurationError(
                f"unknown train_on_what {value!r}; valid values: {valid}"
            ) from None


@attrs.frozen(kw_only=True)
class ToolCall:
    """One function call an assistant made; ``arguments`` is JSON object text."""

    name: str
    arguments: str
    id: str | None = None

    def arguments_dict(self) -> Any:
        """The decoded arguments (templates print them as JSON objects)."""
        return json.loads(self.arguments)


@attrs.frozen(kw_only=True)
class Message:
    """A validated chat message.

    ``content`` is a string or a list of ``{"type": "text", "text": ...}`` /
    ``{"type": "image", ...}`` parts; ``reasoning_content`` is the hidden chain of
    thought (alias ``thinking`` in input dicts); ``trainable`` is used only by
    :attr:`TrainOnWhat.CUSTOMIZED`.
    """

    role: str
    content: str | tuple[Mapping[str, Any], ...] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None
    trainable: bool | None = None


def _tool_call(raw: Any, where: str) -> ToolCall:
    """Validate one OpenAI-style tool call (``{"function": {"name", "arguments"}}``)."""
    if not isinstance(raw, Mapping):
        raise InvalidDataError(f"{where} is {type(raw).__name__}; expected a mapping")
    fn = raw.get("function", raw)
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise InvalidDataError(f"{where} needs function.name as a string")
    args = fn.get("arguments", {})
    if isinstance(args, Mapping):
        args = json.dumps(dict(args), ensure_ascii=False)
    if not isinstance(args, str):
        raise InvalidDataError(f"{where}.function.arguments must be a JSON string or a dict")
    try:
        decoded = json.loads(args)
    except json.JSONDecodeError as exc:
        raise InvalidDataError(f"{where}.function.arguments is not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise InvalidDataError(f"{where}.function.arguments must encode a JSON object")
    call_id = raw.get("id")
    return ToolCall(
        name=fn["name"], arguments=args, id=call_id if isinstance(call_id, str) else None
    )


def to_message(raw: Mapping[str, Any] | Message, index: int = 0) -> Message:
    """Validate one message dict.

    Raises:
        ConfigurationError: unknown role (the message lists the valid roles).
        InvalidDataError: a field has the wrong type.
    """
    if isinstance(raw, Message):
        return raw
    where = f"messages[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidDataError(f"{where} is {type(raw).__name__}; expected a mapping")
    role = raw.get("role")
    if role not in VALID_ROLES:
        raise ConfigurationError(f"{where}.role is {role!r}; valid roles: {', '.join(VALID_ROLES)}")
    content = raw.get("content")
    calls = raw.get("tool_calls") or ()
    reasoning = raw.get("reasoning_content", raw.get("thinking"))
    if content is None:
        if role != "assistant":
            raise InvalidDataError(
                f"{where} is a {role} message without 'content'; give its text as "
                "'content' (\"\" for an empty message)"
            )
        if not calls and reasoning is None:
            raise InvalidDataError(
                f"{where} is an assistant message with neither 'content' nor 'tool_calls'; "
                "give its text as 'content' (\"\" for an empty answer) or its 'tool_calls'"
            )
        content = ""
    if isinstance(content, list | tuple):
        parts = tuple(content)
        for j, part in enumerate(parts):
            if not isinstance(part, Mapping) or part.get("type") not in ("text", "image"):
                raise InvalidDataError(f"{where}.content[{j}] must be a text or image part")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise InvalidDataError(f"{where}.content[{j}].text must be a string")
        content = parts
    elif not isinstance(content, str):
        raise InvalidDataError(f"{where}.content must be a string or a list of parts")
    if reasoning is not None and not isinstance(reasoning, str):
        raise InvalidDataError(f"{where}.reasoning_content must be a string")
    if not isinstance(calls, list | tuple):
        raise InvalidDataError(f"{where}.tool_calls must be a list")
    trainable = raw.get("trainable")
    if trainable is not None and not isinstance(trainable, bool):
        raise InvalidDataError(f"{where}.trainable must be a bool")
    for key in ("tool_call_id", "name"):
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            raise InvalidDataError(f"{where}.{key} must be a string")
    return Message(
        role=role,
        content=content,
        tool_calls=tuple(_tool_call(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(calls)),
        tool_call_id=raw.get("tool_call_id"),
        name=raw.get("name"),
        reasoning_content=reasoning,
        trainable=trainable,
    )


def to_messages(raw: Sequence[Mapping[str, Any] | Message]) -> list[Message]:
    """Validate a conversation (see :func:`to_message`).

    A tool result's ``tool_call_id`` must name a tool call of an earlier assistant
    message. This is checked here, once for every format, although no vendored template
    prints the ids: a mismatch means the conversation was assembled wrongly. It cannot
    be checked when no earlier call carries an id (data for id-less formats such as
    Llama 3 often omits them); a result without ``tool_call_id`` is never checked.

    Raises:
        ConfigurationError: unknown role.
        InvalidDataError: a malformed message, or a ``tool_call_id`` that matches no
            earlier assistant tool call.
    """
    messages = [to_message(m, i) for i, m in enumerate(raw)]
    call_ids: set[str] = set()
    for i, m in enumerate(messages):
        call_ids.update(c.id for c in m.tool_calls if c.id is not None)
        unknown = m.tool_call_id is not None and m.tool_call_id not in call_ids
        if m.role == "tool" and call_ids and unknown:
            known = ", ".join(sorted(call_ids))
            raise InvalidDataError(
                f"messages[{i}].tool_call_id is {m.tool_call_id!r}, which matches no "
                f"earlier assistant tool call (ids: {known}); give the id of the call "
                "this result answers"
            )
    return messages


def message_text(message: Message) -> str:
    """The text of a text-only message (text parts are concatenated).

    Raises:
        InvalidDataError: the message has image parts (text renderers cannot show them).
    """
    if isinstance(message.content, str):
        return message.content
    texts: list[str] = []
    for part in message.content:
        if part.get("type") != "text":
            raise InvalidDataError(
                f"a {message.role} message has image parts, which this text-only renderer "
                "cannot show; use a vision renderer (qwen3_vl, qwen3_vl_instruct) or remove "
                "the image parts"
            )
        texts.append(str(part["text"]))
    return "".join(texts)
