"""One row loader for every recipe: dataset records → validated, normalised rows.

Records come from any :class:`~crucible_train.ports.dataset_store.DatasetStore` (JSONL,
JSON, CSV, Parquet, Hugging Face datasets); whatever the source, a row is normalised to
one of four typed classes:

* :class:`ConversationRow`: ``{"messages": [...], "tools": [...]?}``;
* :class:`PromptCompletionRow`: ``prompt`` and ``completion`` (the loss on the completion);
* :class:`PromptRow`: ``prompt`` plus extra columns (``answer``, ...) kept for the reward;
* :class:`PreferenceRow`: ``prompt``/``chosen``/``rejected``; without a prompt column the
  prompt is the common prefix of the ``chosen`` and ``rejected`` message lists.

A prompt or completion is a string (a user prompt / an assistant reply) or a list of
messages. Column names come from :class:`ColumnNames`. Every error names the file and the
line or row, what was wrong and the columns the row has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import attrs

from crucible_train.errors import InvalidDataError
from crucible_train.ports.dataset_store import DatasetRecord, DatasetStore

__all__ = [
    "ROW_KINDS",
    "ColumnNames",
    "ConversationRow",
    "Message",
    "PreferenceRow",
    "PromptCompletionRow",
    "PromptRow",
    "Row",
    "RowKind",
    "detect_kind",
    "is_message",
    "iter_rows",
    "load_rows",
    "normalise_record",
]

Message = Mapping[str, Any]
"""One chat message (``{"role": ..., "content": ...}``)."""

RowKind = Literal["conversation", "prompt_completion", "prompt", "preference"]
ROW_KINDS: tuple[RowKind, ...] = ("conversation", "prompt_completion", "prompt", "preference")


@attrs.frozen(kw_only=True)
class ColumnNames:
    """The columns rows are read from (a dataset's own spelling, e.g. ``question``).

    Args:
        messages_key: the message list of a conversational row.
        prompt_key: the prompt (string or message list).
        completion_key: the completion of a prompt-completion row.
        answer_key: the reference answer of a prompt-only row; ``None``: not required.
        chosen_key: the preferred completion of a preference row.
        rejected_key: the other completion of a preference row.
    """

    messages_key: str = "messages"
    prompt_key: str = "prompt"
    completion_key: str = "completion"
    answer_key: str | None = "answer"
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"


def _where_field() -> Any:
    # Where a row came from is for messages only: the same row read from a JSONL and a
    # Parquet file must compare equal.
    return attrs.field(default="", eq=False)


@attrs.frozen(kw_only=True)
class ConversationRow:
    """A conversation to train on; ``tools`` are the tool specs given to the renderer."""

    messages: tuple[Message, ...]
    tools: tuple[Mapping[str, Any], ...] | None = None
    where: str = _where_field()

    def conversation(self) -> dict[str, Any]:
        """The ``{"messages": [...], "tools": [...]?}`` dict the SFT datum builders take."""
        out: dict[str, Any] = {"messages": list(self.messages)}
        if self.tools:
            out["tools"] = list(self.tools)
        return out


@attrs.frozen(kw_only=True)
class PromptCompletionRow:
    """A prompt and its completion; only the completion is trained on."""

    prompt: tuple[Message, ...]
    completion: tuple[Message, ...]
    where: str = _where_field()

    def conversation(self) -> dict[str, Any]:
        """The conversation with ``trainable`` flags, for ``train_on_what="customized"``."""
        messages = [{**m, "trainable": False} for m in self.prompt]
        messages += [{**m, "trainable": True} for m in self.completion]
        return {"messages": messages}


@attrs.frozen(kw_only=True)
class PromptRow:
    """A prompt to sample from; ``extras`` holds every other column (``answer`` included)."""

    prompt: tuple[Message, ...]
    answer: Any = None
    extras: Mapping[str, Any] = attrs.field(factory=dict)
    where: str = _where_field()


@attrs.frozen(kw_only=True)
class PreferenceRow:
    """A prompt and two completions, ``chosen`` preferred to ``rejected``."""

    prompt: tuple[Message, ...]
    chosen: tuple[Message, ...]
    rejected: tuple[Message, ...]
    where: str = _where_field()


Row = ConversationRow | PromptCompletionRow | PromptRow | PreferenceRow


def is_message(value: object) -> bool:
    """Whether ``value`` is a ``{"role": str, "content": str | list}`` message.

    An assistant message may leave ``content`` out (or null) when it holds ``tool_calls``
    or reasoning, as the renderers accept.
    """
    if not isinstance(value, Mapping) or not isinstance(value.get("role"), str):
        return False
    content = value.get("content")
    if content is None:
        # A tool-calling assistant turn often has null content (OpenAI-style data).
        return value["role"] == "assistant" and any(
            value.get(key) is not None for key in ("tool_calls", "reasoning_content", "thinking")
        )
    return isinstance(content, str | list)


def _clean(message: Message) -> dict[str, Any]:
    # Parquet and HF datasets store messages as structs: a key one message has is null
    # in every other; dropping nulls gives back the message as written in JSONL.
    return {key: value for key, value in message.items() if value is not None}


def _columns(data: Mapping[str, Any]) -> str:
    return ", ".join(repr(str(key)) for key in data) or "none"


def _messages(value: object, key: str, role: str, where: str) -> tuple[Message, ...]:
    """A string (one ``role`` message) or a non-empty list of messages, validated."""
    if isinstance(value, str):
        return ({"role": role, "content": value},)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise InvalidDataError(
            f"{where}: column {key!r} must be a string or a non-empty list of messages, "
            f"got {type(value).__name__}"
        )
    for index, message in enumerate(value):
        if not is_message(message):
            raise InvalidDataError(
                f'{where}: column {key!r} item {index} must be {{"role": str, "content": ...}}'
            )
    return tuple(_clean(m) for m in value)


_KIND_LABELS: dict[RowKind, str] = {
    "conversation": "conversation",
    "prompt_completion": "prompt-completion",
    "prompt": "prompt-only",
    "preference": "preference",
}


def _kind_columns(kind: RowKind, names: ColumnNames) -> dict[str, str]:
    """The :class:`ColumnNames` options (→ columns) a row of ``kind`` is told apart by."""
    return {
        "conversation": {"messages_key": names.messages_key},
        "prompt_completion": {
            "prompt_key": names.prompt_key,
            "completion_key": names.completion_key,
        },
        "prompt": {"prompt_key": names.prompt_key},
        "preference": {"chosen_key": names.chosen_key, "rejected_key": names.rejected_key},
    }[kind]


def _require(data: Mapping[str, Any], keys: Mapping[str, str], kind: str, where: str) -> None:
    """``keys``: the :class:`ColumnNames` option (``prompt_key``, ...) → the column it names."""
    missing = {option: key for option, key in keys.items() if key not in data}
    if missing:
        raise InvalidDataError(
            f"{where}: a {kind} row needs column(s) {', '.join(map(repr, missing.values()))}; "
            f"the row has {_columns(data)} (set the column names if the dataset spells them "
            f"differently: {', '.join(missing)})"
        )


def _completion(value: object, key: str, where: str) -> tuple[Message, ...]:
    messages = _messages(value, key, "assistant", where)
    if messages[-1]["role"] != "assistant":
        raise InvalidDataError(
            f"{where}: the last message of {key!r} must be the assistant's, got role "
            f"{messages[-1]['role']!r}"
        )
    return messages


def _conversation(data: Mapping[str, Any], names: ColumnNames, where: str) -> ConversationRow:
    _require(data, _kind_columns("conversation", names), "conversation", where)
    value = data[names.messages_key]
    if isinstance(value, str):
        raise InvalidDataError(
            f"{where}: column {names.messages_key!r} must be a list of messages, got a string"
        )
    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list | tuple):
        raise InvalidDataError(f"{where}: column 'tools' must be a list of tool specs")
    return ConversationRow(
        messages=_messages(value, names.messages_key, "user", where),
        tools=tuple(tools) if tools else None,
        where=where,
    )


def _prompt_completion(
    data: Mapping[str, Any], names: ColumnNames, where: str
) -> PromptCompletionRow:
    _require(data, _kind_columns("prompt_completion", names), "prompt-completion", where)
    return PromptCompletionRow(
        prompt=_messages(data[names.prompt_key], names.prompt_key, "user", where),
        completion=_completion(data[names.completion_key], names.completion_key, where),
        where=where,
    )


def _prompt(data: Mapping[str, Any], names: ColumnNames, where: str) -> PromptRow:
    required = _kind_columns("prompt", names)
    if names.answer_key:
        required["answer_key"] = names.answer_key
    _require(data, required, "prompt", where)
    extras = {key: value for key, value in data.items() if key != names.prompt_key}
    return PromptRow(
        prompt=_messages(data[names.prompt_key], names.prompt_key, "user", where),
        answer=data[names.answer_key] if names.answer_key else None,
        extras=extras,
        where=where,
    )


def _preference(data: Mapping[str, Any], names: ColumnNames, where: str) -> PreferenceRow:
    _require(data, _kind_columns("preference", names), "preference", where)
    chosen = _completion(data[names.chosen_key], names.chosen_key, where)
    rejected = _completion(data[names.rejected_key], names.rejected_key, where)
    for key in (names.prompt_key, names.messages_key):
        if key in data:
            prompt = _messages(data[key], key, "user", where)
            return PreferenceRow(prompt=prompt, chosen=chosen, rejected=rejected, where=where)
    # Implicit prompt: the messages chosen and rejected share before they differ.
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise InvalidDataError(
            f"{where}: a preference row without a {names.prompt_key!r} column needs chosen and "
            f"rejected message lists that start with the same prompt; the row has "
            f"{_columns(data)}"
        )
    return PreferenceRow(
        prompt=chosen[:shared], chosen=chosen[shared:], rejected=rejected[shared:], where=where
    )


_NORMALISERS: dict[str, Callable[[Mapping[str, Any], ColumnNames, str], Row]] = {
    "conversation": _conversation,
    "prompt_completion": _prompt_completion,
    "prompt": _prompt,
    "preference": _preference,
}


def detect_kind(data: Mapping[str, Any], names: ColumnNames = ColumnNames()) -> RowKind | None:
    """The kind of row ``data`` looks like by its columns, or ``None`` when none fits."""
    # Most specific first: a preference row may also hold a prompt, a prompt-completion
    # row is a prompt row with one more column.
    for kind in ("preference", "prompt_completion", "conversation", "prompt"):
        if all(column in data for column in _kind_columns(kind, names).values()):
            return kind
    return None


def normalise_record(
    record: DatasetRecord, kind: RowKind, names: ColumnNames = ColumnNames()
) -> Row:
    """The validated row of kind ``kind`` that ``record`` holds.

    Raises:
        InvalidDataError: a column is missing or malformed (names the file, line or row,
            and the columns the row has); ``kind`` is not one of :data:`ROW_KINDS`.
    """
    if kind not in _NORMALISERS:
        raise InvalidDataError(f"unknown row kind {kind!r}; valid kinds: {', '.join(ROW_KINDS)}")
    data = record.data
    if not isinstance(data, Mapping):
        raise InvalidDataError(f"{record.where}: expected an object of columns")
    return _NORMALISERS[kind](data, names, record.where)


def _kind_problem(
    record: DatasetRecord, found: RowKind | None, kinds: tuple[RowKind, ...], names: ColumnNames
) -> str:
    expected = " or ".join(
        f"{_KIND_LABELS[kind]} rows ({' + '.join(map(repr, _kind_columns(kind, names).values()))})"
        for kind in kinds
    )
    options = dict.fromkeys(option for kind in kinds for option in _kind_columns(kind, names))
    hint = f"(set {', '.join(options)} if the dataset spells them differently)"
    if found is None:
        return (
            f"{record.where}: cannot tell the row format from its columns "
            f"({_columns(record.data)}); expected {expected} {hint}"
        )
    return (
        f"{record.where}: expected {expected}, got a {_KIND_LABELS[found]} row (columns "
        f"{_columns(record.data)}) {hint}"
    )


def iter_rows(
    store: DatasetStore,
    source: str,
    kind: RowKind | tuple[RowKind, ...] | None = None,
    names: ColumnNames = ColumnNames(),
) -> Iterator[Row]:
    """Stream the normalised rows of ``source``.

    ``kind`` is the row kind, or several kinds to accept (``None``: any): the first row's
    columns then tell which (:func:`detect_kind`) and every later row is held to it.

    Raises:
        InvalidDataError: a row is malformed, does not match the kind, the first row's kind
            is not one of ``kind`` (names file and line/row, the columns it has and the
            column options to set), or the dataset holds no rows.
    """
    accepted = ROW_KINDS if kind is None else (kind,) if isinstance(kind, str) else kind
    unknown = [name for name in accepted if name not in _NORMALISERS]
    if unknown:
        raise InvalidDataError(
            f"unknown row kind(s) {', '.join(map(repr, unknown))}; valid kinds: "
            f"{', '.join(ROW_KINDS)}"
        )
    fixed: RowKind | None = kind if isinstance(kind, str) else None
    count = 0
    for record in store.iter_records(source):
        if fixed is None:
            found = detect_kind(record.data, names)
            if found is None or found not in accepted:
                raise InvalidDataError(_kind_problem(record, found, accepted, names))
            fixed = found
        count += 1
        yield normalise_record(record, fixed, names)
    if count == 0:
        raise InvalidDataError(f"{source}: the dataset holds no rows; add at least one row")


def load_rows(
    store: DatasetStore,
    source: str,
    kind: RowKind | tuple[RowKind, ...] | None = None,
    names: ColumnNames = ColumnNames(),
) -> list[Row]:
    """Every normalised row of ``source`` (see :func:`iter_rows`)."""
    return list(iter_rows(store, source, kind, names))
