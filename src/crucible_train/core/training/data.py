"""Supervised data: conversations or loader rows → shifted, weighted datums → seeded batches.

A rendered example of ``n`` tokens becomes a datum of ``n-1`` positions: position ``i`` reads
tokens ``0..i`` and predicts token ``i+1``, with that token's weight. Examples with no
trainable token are skipped and counted, never trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.core.datasets import ConversationRow, PromptCompletionRow
from crucible_train.core.renderers.messages import TrainOnWhat
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.types import Datum, EncodedTextChunk, ModelInput, TensorData

__all__ = [
    "ConversationData",
    "SupervisedRenderer",
    "SupervisedRow",
    "batch_indices",
    "conversations_to_datums",
    "datum_from_example",
    "rows_to_datums",
]


SupervisedRow = ConversationRow | PromptCompletionRow
"""A loader row SFT trains on (see :mod:`crucible_train.core.datasets`)."""


class SupervisedRenderer(Protocol):
    """What the data pipeline needs of a renderer."""

    def build_supervised_example(
        self,
        messages: Sequence[Mapping[str, Any]],
        train_on_what: Any = ...,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[ModelInput, npt.NDArray[np.float32]]:
        """Tokens and per-token weights of a conversation."""
        ...


def datum_from_example(
    model_input: ModelInput,
    weights: npt.ArrayLike,
    *,
    max_length: int | None = None,
    normalize: bool = False,
) -> Datum | None:
    """The training datum of a rendered example, or ``None`` when nothing is trainable.

    Args:
        model_input: the example's tokens (text only).
        weights: one weight per token of ``model_input``.
        max_length: keep at most this many tokens (right truncation) before shifting.
        normalize: divide the weights by their sum (per-example token mean) instead of
            keeping raw 0/1 (per-token sum).

    Raises:
        InvalidDataError: weights and tokens differ in length, or the example holds images.
    """
    tokens = model_input.to_ints()
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (len(tokens),):
        raise InvalidDataError(
            f"{w.shape[0] if w.ndim else 0} weights for {len(tokens)} tokens; "
            "a supervised example needs one weight per token"
        )
    if max_length is not None:
        tokens, w = tokens[:max_length], w[:max_length]
    if len(tokens) < 2:
        return None
    targets = np.asarray(tokens[1:], dtype=np.int64)
    target_weights = w[1:].copy()
    total = float(target_weights.sum())
    if total <= 0.0:
        return None
    if normalize:
        target_weights /= total
    return Datum(
        model_input=ModelInput(chunks=(EncodedTextChunk(tokens=tokens[:-1]),)),
        loss_fn_inputs={
            "target_tokens": TensorData.from_numpy(targets),
            "weights": TensorData.from_numpy(target_weights),
        },
    )


@attrs.frozen(kw_only=True)
class ConversationData:
    """Datums of a conversation set and how many conversations were skipped (nothing to train)."""

    datums: tuple[Datum, ...]
    skipped: int


def conversations_to_datums(
    conversations: Iterable[Mapping[str, Any]],
    renderer: SupervisedRenderer,
    *,
    train_on_what: str,
    max_length: int | None = None,
    normalize: bool = False,
) -> ConversationData:
    """Render every conversation (``{"messages": [...], "tools": [...]?}``) into a datum."""
    return _render_all(
        ((conversation, train_on_what) for conversation in conversations),
        renderer,
        max_length=max_length,
        normalize=normalize,
    )


def rows_to_datums(
    rows: Iterable[SupervisedRow],
    renderer: SupervisedRenderer,
    *,
    train_on_what: str,
    max_length: int | None = None,
    normalize: bool = False,
) -> ConversationData:
    """Render loader rows: a conversation with ``train_on_what``, a prompt-completion row on
    its completion only (``customized``, from the row's ``trainable`` flags)."""
    return _render_all(
        (
            (
                row.conversation(),
                TrainOnWhat.CUSTOMIZED.value
                if isinstance(row, PromptCompletionRow)
                else train_on_what,
            )
            for row in rows
        ),
        renderer,
        max_length=max_length,
        normalize=normalize,
    )


def _render_all(
    items: Iterable[tuple[Mapping[str, Any], str]],
    renderer: SupervisedRenderer,
    *,
    max_length: int | None,
    normalize: bool,
) -> ConversationData:
    datums: list[Datum] = []
    skipped = 0
    for conversation, train_on_what in items:
        model_input, weights = renderer.build_supervised_example(
            conversation["messages"], train_on_what, tools=conversation.get("tools")
        )
        datum = datum_from_example(model_input, weights, max_length=max_length, normalize=normalize)
        if datum is None:
            skipped += 1
        else:
            datums.append(datum)
    return ConversationData(datums=tuple(datums), skipped=skipped)


def batch_indices(n_items: int, batch_size: int, *, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a permutation seeded by ``(seed, epoch)``, cut into full batches.

    The remainder that does not fill a batch is left out of this epoch (a different
    remainder next epoch), so every step sees the same number of examples.

    Raises:
        ConfigurationError: ``batch_size`` is larger than the data set.
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size > n_items:
        raise ConfigurationError(
            f"batch_size {batch_size} is larger than the data set ({n_items} examples); "
            f"lower batch_size to at most {n_items} or add data"
        )
    order = list(range(n_items))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_items - batch_size + 1, batch_size)]
