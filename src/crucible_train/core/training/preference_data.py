"""Preference data for DPO: pairs of completions, read from JSONL and rendered to datums.

A pair (prompt, chosen, rejected) becomes two datums, rendered with
``last_assistant_message`` weights kept raw (0/1), so the weighted sum of a datum's target
log-probabilities is its completion's sequence log-probability.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from crucible_train.core.datasets import is_message
from crucible_train.core.training.data import SupervisedRenderer, datum_from_example
from crucible_train.errors import InvalidDataError
from crucible_train.ports.dataset_store import DatasetStore
from crucible_train.types import Datum

__all__ = [
    "Message",
    "PreferenceData",
    "PreferencePair",
    "load_preference_pairs",
    "pairs_to_datums",
]

Message = Mapping[str, Any]
"""One chat message (``{"role": ..., "content": ...}``)."""


@attrs.frozen(kw_only=True)
class PreferencePair:
    """A prompt and two completions, ``chosen`` preferred to ``rejected``.

    Attributes:
        prompt: the conversation before the completions.
        chosen: the preferred completion's messages (the last one is the assistant's).
        rejected: the other completion's messages.
    """

    prompt: tuple[Message, ...]
    chosen: tuple[Message, ...]
    rejected: tuple[Message, ...]


def _completion(value: object, key: str, where: str) -> tuple[Message, ...]:
    if isinstance(value, str):
        return ({"role": "assistant", "content": value},)
    if isinstance(value, Mapping):
        messages: list[object] = [value]
    elif isinstance(value, list) and value:
        messages = list(value)
    else:
        raise InvalidDataError(
            f"{where}: {key!r} must be a string, a message object or a non-empty list of "
            f"messages, got {type(value).__name__}"
        )
    for index, message in enumerate(messages):
        if not is_message(message):
            raise InvalidDataError(
                f'{where}: {key!r} message {index} must be {{"role": str, "content": ...}}'
            )
    last = messages[-1]
    assert isinstance(last, Mapping)
    if last["role"] != "assistant":
        raise InvalidDataError(
            f"{where}: the last message of {key!r} must be the assistant's, got role "
            f"{last['role']!r}"
        )
    return tuple(m for m in messages if isinstance(m, Mapping))


def _prompt(data: Mapping[str, Any], where: str) -> tuple[Message, ...]:
    has_prompt, has_messages = "prompt" in data, "messages" in data
    if has_prompt == has_messages:
        raise InvalidDataError(
            f'{where}: a preference row needs exactly one of "prompt" (a string) or '
            f'"messages" (a list of messages), got {"both" if has_prompt else "neither"}'
        )
    if has_prompt:
        if not isinstance(data["prompt"], str):
            raise InvalidDataError(
                f'{where}: "prompt" must be a string, got {type(data["prompt"]).__name__}'
            )
        return ({"role": "user", "content": data["prompt"]},)
    messages = data["messages"]
    if not isinstance(messages, list) or not messages:
        raise InvalidDataError(f'{where}: "messages" must be a non-empty list of messages')
    for index, message in enumerate(messages):
        if not is_message(message):
            raise InvalidDataError(
                f'{where}: "messages" item {index} must be {{"role": str, "content": ...}}'
            )
    return tuple(messages)


def load_preference_pairs(store: DatasetStore, source: str) -> list[PreferencePair]:
    """Every preference row of a JSONL dataset.

    A row is ``{"prompt": str | "messages": [...], "chosen": ..., "rejected": ...}`` where a
    completion is a string (the assistant's reply), one message or a list of messages
    ending with the assistant's.

    Raises:
        InvalidDataError: the dataset is empty or a row is malformed (names ``path:line``
            and what is wrong).
    """
    out: list[PreferencePair] = []
    for record in store.iter_records(source):
        where = f"{record.source}:{record.line}"
        data = record.data
        if not isinstance(data, Mapping):
            raise InvalidDataError(f"{where}: expected a JSON object")
        missing = [key for key in ("chosen", "rejected") if key not in data]
        if missing:
            raise InvalidDataError(f"{where}: a preference row needs {' and '.join(missing)!s}")
        prompt = _prompt(data, where)
        out.append(
            PreferencePair(
                prompt=prompt,
                chosen=_completion(data["chosen"], "chosen", where),
                rejected=_completion(data["rejected"], "rejected", where),
            )
        )
    if not out:
        raise InvalidDataError(
            f'{source}: the dataset holds no rows; add JSONL lines with "prompt", "chosen" '
            'and "rejected"'
        )
    return out


@attrs.frozen(kw_only=True)
class PreferenceData:
    """Datums of a preference set, ``[chosen_0, rejected_0, chosen_1, ...]``, and the number
    of pairs skipped because a completion renders to no trainable token."""

    datums: tuple[Datum, ...]
    skipped: int

    @property
    def num_pairs(self) -> int:
        """Pairs kept."""
        return len(self.datums) // 2


def pairs_to_datums(
    pairs: Sequence[PreferencePair],
    renderer: SupervisedRenderer,
    *,
    max_length: int | None = None,
) -> PreferenceData:
    """Render each pair into a chosen and a rejected datum (raw 0/1 weights: sequence sums)."""
    datums: list[Datum] = []
    skipped = 0
    for pair in pairs:
        rendered: list[Datum] = []
        for completion in (pair.chosen, pair.rejected):
            model_input, weights = renderer.build_supervised_example(
                [*pair.prompt, *completion], "last_assistant_message"
            )
            datum = datum_from_example(model_input, weights, max_length=max_length)
            if datum is None:
                break
            rendered.append(datum)
        if len(rendered) == 2:
            datums.extend(rendered)
        else:
            skipped += 1
    return PreferenceData(datums=tuple(datums), skipped=skipped)
