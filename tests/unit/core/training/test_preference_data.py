"""Preference data: JSONL rows (errors name path:line), and datums (of arithmetic pairs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from crucible_train.core.training.preference_data import load_preference_pairs, pairs_to_datums
from crucible_train.errors import InvalidDataError
from crucible_train.recipes.arithmetic.pairs import arithmetic_pairs, rejected_answer
from crucible_train.recipes.arithmetic.task import ArithmeticTask

from fakes import FakeDatasetStore

GOOD = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}


def test_rows_in_every_accepted_form() -> None:
    rows: list[Mapping[str, Any]] = [
        GOOD,
        {
            "messages": [
                {"role": "system", "content": "Be exact."},
                {"role": "user", "content": "1+1?"},
            ],
            "chosen": {"role": "assistant", "content": "2"},
            "rejected": [{"role": "assistant", "content": "3"}],
        },
    ]
    pairs = load_preference_pairs(FakeDatasetStore({"prefs.jsonl": rows}), "prefs.jsonl")
    assert pairs[0].prompt == ({"role": "user", "content": "2+2?"},)
    assert pairs[0].chosen == ({"role": "assistant", "content": "4"},)
    assert len(pairs[1].prompt) == 2
    assert pairs[1].rejected == ({"role": "assistant", "content": "3"},)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"chosen": "4", "rejected": "5"}, "exactly one of"),
        ({**GOOD, "messages": [{"role": "user", "content": "x"}]}, "exactly one of"),
        ({"prompt": "q", "rejected": "5"}, "needs chosen"),
        ({"prompt": "q", "chosen": "4"}, "needs rejected"),
        ({"prompt": 3, "chosen": "4", "rejected": "5"}, '"prompt" must be a string'),
        ({"messages": [], "chosen": "4", "rejected": "5"}, "non-empty list"),
        ({"messages": [{"content": "x"}], "chosen": "4", "rejected": "5"}, "item 0"),
        ({"prompt": "q", "chosen": 4, "rejected": "5"}, "'chosen' must be a string"),
        ({"prompt": "q", "chosen": "4", "rejected": []}, "'rejected' must be a string"),
        (
            {"prompt": "q", "chosen": "4", "rejected": {"role": "user", "content": "5"}},
            "must be the assistant's",
        ),
    ],
)
def test_malformed_row_names_path_line_and_problem(row: Mapping[str, Any], message: str) -> None:
    store = FakeDatasetStore({"prefs.jsonl": [GOOD, row]})
    with pytest.raises(InvalidDataError, match=r"prefs\.jsonl:2: ") as info:
        load_preference_pairs(store, "prefs.jsonl")
    assert message in str(info.value)


def test_empty_dataset_is_refused() -> None:
    with pytest.raises(InvalidDataError, match="no rows"):
        load_preference_pairs(FakeDatasetStore({"empty.jsonl": []}), "empty.jsonl")


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
