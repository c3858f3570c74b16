"""Supervised data: shift by one, weights, skipping, loader rows, seeded batches."""

from __future__ import annotations

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.core.datasets import ConversationRow, PromptCompletionRow
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.data import (
    batch_indices,
    conversations_to_datums,
    datum_from_example,
    rows_to_datums,
)
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.types import ModelInput

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def _renderer():  # type: ignore[no-untyped-def]
    return get_renderer(
        "qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    )


def test_datum_is_shifted_by_one_with_the_target_weights() -> None:
    datum = datum_from_example(ModelInput.from_ints([5, 6, 7, 8]), [0, 0, 1, 1])
    assert datum is not None
    assert datum.model_input.to_ints() == [5, 6, 7]
    assert datum.loss_fn_inputs["target_tokens"].to_numpy().tolist() == [6, 7, 8]
    assert datum.loss_fn_inputs["weights"].to_numpy().tolist() == [0, 1, 1]


def test_normalised_weights_sum_to_one_and_max_length_truncates() -> None:
    datum = datum_from_example(
        ModelInput.from_ints([1, 2, 3, 4, 5]), [0, 1, 1, 1, 1], max_length=4, normalize=True
    )
    assert datum is not None
    weights = datum.loss_fn_inputs["weights"].to_numpy()
    assert weights.tolist() == pytest.approx([1 / 3] * 3)
    assert datum.model_input.length == 3


def test_nothing_trainable_gives_none_and_mismatched_weights_fail() -> None:
    assert datum_from_example(ModelInput.from_ints([1, 2, 3]), [1, 0, 0]) is None
    assert datum_from_example(ModelInput.from_ints([1]), [1]) is None
    with pytest.raises(InvalidDataError, match="2 weights for 3 tokens"):
        datum_from_example(ModelInput.from_ints([1, 2, 3]), [1, 1])


def test_conversations_without_trainable_tokens_are_skipped_and_counted() -> None:
    conversations = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
    ]
    data = conversations_to_datums(
        conversations, _renderer(), train_on_what="last_assistant_message"
    )
    assert len(data.datums) == 1
    assert data.skipped == 1
    weights = data.datums[0].loss_fn_inputs["weights"].to_numpy()
    assert 0 < weights.sum() < len(weights)


def _trained_text(datum) -> str:  # type: ignore[no-untyped-def]
    targets = datum.loss_fn_inputs["target_tokens"].to_numpy()
    weights = datum.loss_fn_inputs["weights"].to_numpy()
    tokens = [int(t) for t, w in zip(targets, weights, strict=True) if w]
    return ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512).decode(tokens)


def test_prompt_completion_rows_train_on_the_completion_only() -> None:
    few_shot = (
        {"role": "user", "content": "Reverse: ab"},
        {"role": "assistant", "content": "ba"},
        {"role": "user", "content": "Reverse: xyz"},
    )
    completion = ({"role": "assistant", "content": "zyx"},)
    rows = [
        PromptCompletionRow(prompt=few_shot, completion=completion),
        ConversationRow(messages=few_shot + completion),
    ]
    data = rows_to_datums(rows, _renderer(), train_on_what="all_assistant_messages")
    completion_only, conversation = data.datums
    # The prompt's assistant turn is not trained although train_on_what names every
    # assistant message: a prompt-completion row renders with its trainable flags.
    assert _trained_text(completion_only) == "zyx<|im_end|>"
    assert _trained_text(conversation) == "ba<|im_end|>zyx<|im_end|>"
    assert completion_only.model_input == conversation.model_input
    # With one assistant reply, the completion is exactly what last_assistant_message trains.
    single = rows_to_datums(
        [PromptCompletionRow(prompt=few_shot[2:], completion=completion)],
        _renderer(),
        train_on_what="last_assistant_message",
    )
    same = conversations_to_datums(
        [{"messages": [*few_shot[2:], *completion]}],
        _renderer(),
        train_on_what="last_assistant_message",
    )
    assert single == same


def test_batches_are_a_seeded_permutation_per_epoch() -> None:
    first = batch_indices(10, 3, seed=0, epoch=0)
    assert first == batch_indices(10, 3, seed=0, epoch=0)
    assert len(first) == 3
    assert all(len(b) == 3 for b in first)
    assert len({i for b in first for i in b}) == 9
    assert first != batch_indices(10, 3, seed=0, epoch=1)
    assert first != batch_indices(10, 3, seed=1, epoch=0)
    assert sorted(batch_indices(6, 6, seed=0, epoch=0)[0]) == list(range(6))


def test_batch_size_larger_than_the_data_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"batch_size 11 .* \(10 examples\)"):
        batch_indices(10, 11, seed=0, epoch=0)
    with pytest.raises(ConfigurationError, match="batch_size must be >= 1"):
        batch_indices(10, 0, seed=0, epoch=0)
