"""The evaluation's value types: a sample to evaluate and the result it gets.

A sample's ``input`` is a string (one user message) or a list of chat messages
(``{"role", "content"}`` dicts), as in the datasets of :mod:`crucible_train.core.datasets`;
:func:`input_messages` turns either into the messages a model is asked with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from crucible_train.core.datasets import Message, is_message
from crucible_train.errors import InvalidDataError

__all__ = [
    "REPEAT_KEY",
    "EvalInput",
    "EvalResult",
    "EvalSample",
    "input_messages",
    "repeat_sample",
]

EvalInput = str | tuple[Message, ...]
"""A sample's input: one user message as text, or a conversation."""

REPEAT_KEY = "repeat_of"
"""Metadata key of a sample made by :func:`repeat_sample`: ``(original id, index, count)``."""


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidDataError(f"EvalSample text field is a {type(value).__name__}; expected text")


def _eval_input(value: Any) -> EvalInput | None:
    """``None``, a string, or a non-empty list of messages (kept as a tuple of dicts)."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list | tuple):
        raise InvalidDataError(
            f"EvalSample.input is a {type(value).__name__}; expected a string (one user "
            'message) or a list of messages [{"role": ..., "content": ...}, ...]'
        )
    if not value:
        raise InvalidDataError(
            "EvalSample.input is an empty list; give a string or at least one message"
        )
    for index, message in enumerate(value):
        if not is_message(message):
            raise InvalidDataError(
                f"EvalSample.input item {index} is not a message: expected "
                f'{{"role": str, "content": str or list}}, got {json.dumps(message)[:80]}'
            )
    return tuple(dict(message) for message in value)


def _sample_id(value: Any) -> str:
    # JSONL datasets often use numeric ids; accept whole numbers, refuse everything else.
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidDataError(f"EvalSample.id is {value!r}; expected a non-empty string")


@attrs.frozen(kw_only=True)
class EvalSample:
    """One evaluation item.

    ``input`` is what a model is asked (see :data:`EvalInput`). ``output`` is the model's
    answer when it is already known; when it is ``None`` the runner asks
    :attr:`EvalConfig.generate` for it.
    """

    id: str = attrs.field(converter=_sample_id)
    # Not hashed: a conversation is a tuple of dicts.
    input: EvalInput | None = attrs.field(default=None, converter=_eval_input, hash=False)
    output: str | None = attrs.field(default=None, converter=_optional_str)
    target: str | None = attrs.field(default=None, converter=_optional_str)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EvalSample:
        """Build a sample from a dict (a parsed JSONL line); unknown keys go to metadata.

        Raises:
            InvalidDataError: ``id`` is missing or a field has the wrong type.
        """
        if "id" not in data:
            raise InvalidDataError("sample has no 'id'")
        known = {"id", "input", "output", "target", "metadata"}
        metadata = dict(data.get("metadata") or {})
        metadata.update({k: v for k, v in data.items() if k not in known})
        return cls(
            id=data["id"],
            input=data.get("input"),
            output=data.get("output"),
            target=data.get("target"),
            metadata=metadata,
        )


def input_messages(sample: EvalSample) -> list[dict[str, Any]]:
    """The messages a model is asked with: a text input is one user message.

    Raises:
        InvalidDataError: the sample has no input.
    """
    if sample.input is None:
        raise InvalidDataError("sample has neither output nor input to generate from")
    if isinstance(sample.input, str):
        return [{"role": "user", "content": sample.input}]
    return [dict(message) for message in sample.input]


def repeat_sample(sample: EvalSample, count: int) -> Iterator[EvalSample]:
    """``count`` copies of ``sample`` to answer independently, ids ``<id>#0`` ... ``<id>#K-1``.

    Each copy's metadata holds :data:`REPEAT_KEY` ``(id, index, count)``, so a generator
    can sample the ``count`` answers of one input together. ``count`` 1 yields the sample
    itself, id unchanged.
    """
    if count == 1:
        yield sample
        return
    for index in range(count):
        metadata = {**sample.metadata, REPEAT_KEY: (sample.id, index, count)}
        yield attrs.evolve(sample, id=f"{sample.id}#{index}", metadata=metadata)


@attrs.frozen(kw_only=True)
class EvalResult:
    """The outcome for one sample: its scores by scorer name, or why it failed.

    ``scores`` is ordered like :attr:`EvalConfig.scorers`; the first entry is the primary
    score. When ``error`` is set, ``scores`` holds whatever scorers did succeed.
    """

    id: str
    input: EvalInput | None = attrs.field(default=None, converter=_eval_input, hash=False)
    output: str | None = None
    target: str | None = None
    scores: dict[str, float] = attrs.field(factory=dict, hash=False)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object (what a :class:`ResultsStore` record holds)."""
        out = attrs.asdict(self)
        if isinstance(self.input, tuple):  # a conversation is a JSON list
            out["input"] = [dict(message) for message in self.input]
        return out

    def to_json(self) -> str:
        """One JSON object on one line (no trailing newline)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, line: str | Mapping[str, Any]) -> EvalResult:
        """Parse what :meth:`to_json` wrote (a line or an already decoded dict).

        Raises:
            InvalidDataError: the line is not a result object.
        """
        try:
            data = json.loads(line) if isinstance(line, str) else line
            return cls(
                id=str(data["id"]),
                input=data.get("input"),
                output=data.get("output"),
                target=data.get("target"),
                scores={str(k): float(v) for k, v in (data.get("scores") or {}).items()},
                error=data.get("error"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidDataError(f"not an evaluation result: {exc}") from exc
