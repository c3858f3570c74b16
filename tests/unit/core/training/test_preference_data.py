"""Preference data: datums of arithmetic pairs (loading: tests/unit/recipes/test_dpo.py)."""

from __future__ import annotations

from crucible_train.core.datasets import PreferenceRow
from crucible_train.core.training.preference_data import PreferencePair, pairs_to_datums
from crucible_train.recipes.arithmetic.pairs import arithmetic_pairs, rejected_answer
from crucible_train.recipes.arithmetic.task import ArithmeticTask


def test_pairs_render_to_chosen_then_rejected_datums_with_raw_weights() -> None:
    from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
    from crucible_train.core.renderers import get_renderer

    tokenizer = ByteLevelTokenizer(
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"], vocab_size=512
    )
    renderer = get_renderer("qwen3_instruct", tokenizer)
    problems = ArithmeticTask().problems("test", limit=3)
    data = pairs_to_datums(arithmetic_pairs(problems), renderer)
    assert data.num_pairs == 3
    assert data.skipped == 0
    for i, problem in enumerate(problems):
        chosen, rejected = data.datums[2 * i], data.datums[2 * i + 1]
        for datum, text in ((chosen, problem.answer), (rejected, rejected_answer(problem))):
            weights = datum.loss_fn_inputs["weights"].to_numpy()
            targets = datum.loss_fn_inputs["target_tokens"].to_numpy()
            assert set(weights.tolist()) == {0.0, 1.0}  # not normalised: a sequence sum
            trained = tokenizer.decode([int(t) for t, w in zip(targets, weights, strict=True) if w])
            assert trained.startswith(text)


def test_the_former_pair_name_is_the_loader_row() -> None:
    assert PreferencePair is PreferenceRow
