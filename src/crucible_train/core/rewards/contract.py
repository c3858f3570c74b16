"""The reward contract: what a reward function receives and what it may return.

Core layer: standard library and attrs only.

A reward is any object with a ``name`` and a ``__call__(RewardInput) -> float | None``
(:class:`Reward`). The contract:

* **Input.** :class:`RewardInput` holds the prompt messages, the completion (the
  renderer's parsed message, its text, the sampled token ids, whether the renderer parsed
  it cleanly, why sampling stopped) and the row's extra columns (``answer``, ``solution``
  ...). Token ids are the sampled ones, never a re-tokenisation of the text.
* **Output.** A finite float, on any scale (built-ins document theirs); a weight scales it
  in a combination. ``None`` means "this row cannot be scored by this reward" (for
  example a user reward that only knows some rows): the row's combined reward is
  ``None`` and the loop leaves the row out; it is not counted as a failure.
* **Errors.** Raising, returning NaN/inf or a non-number is a *failure*: the combination
  (:class:`~crucible_train.core.rewards.combine.CombinedReward`) counts it per component,
  gives the row ``None`` and goes on, until the batch's failure rate passes the configured
  limit; then it raises :class:`~crucible_train.errors.RewardError` with the first failure.
* **Thread-safety.** A reward may be called from several threads at once: keep no
  mutable per-call state. The built-ins are stateless (their clients are thread-safe per
  their ports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["Reward", "RewardInput"]


def _int_tuple(tokens: Sequence[int]) -> tuple[int, ...]:
    return tuple(tokens)


def _tuple_of_dicts(messages: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    return tuple(dict(m) for m in messages)


@attrs.frozen(kw_only=True)
class RewardInput:
    """One sampled completion of one row, as a reward sees it.

    Attributes:
        prompt: the prompt messages (``role``/``content`` dicts).
        completion_message: the renderer's parsed assistant message.
        completion_text: the message's text content (``""`` when it has none).
        completion_tokens: the sampled token ids.
        parse_ok: the renderer parsed the completion cleanly.
        stop_reason: why sampling stopped (``"stop"``, ``"length"`` ...); None if unknown.
        extras: the row's other columns (``answer`` ...).
    """

    prompt: tuple[Mapping[str, Any], ...] = attrs.field(converter=_tuple_of_dicts)
    completion_message: Mapping[str, Any] = attrs.field(factory=dict)
    completion_text: str
    completion_tokens: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    parse_ok: bool = True
    stop_reason: str | None = None
    extras: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def format_ok(self) -> bool:
        """Parsed cleanly and not cut off by the token limit."""
        return self.parse_ok and self.stop_reason != "length"

    @property
    def prompt_text(self) -> str:
        """The last prompt message's text content, as a judge is shown it."""
        for message in reversed(self.prompt):
            content = message.get("content")
            if isinstance(content, str):
                return content
        return ""


@runtime_checkable
class Reward(Protocol):
    """Scores one completion; see the module docstring for the contract."""

    @property
    def name(self) -> str:
        """The component's name in metrics (``reward/<name>/mean``)."""
        ...

    def __call__(self, sample: RewardInput) -> float | None:
        """The reward of ``sample``, or None when this row cannot be scored."""
        ...
