"""The ``train dpo`` recipe's data: preference rows in every spelling, column names, bad input."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.core.datasets import PreferenceRow
from crucible_train.core.renderers import get_renderer
from crucible_train.errors import AdapterUnavailableError, ConfigurationError, InvalidDataError
from crucible_train.recipes.dpo import DpoConfig, build_preference_data, load_preference_rows

from fakes import FakeDatasetStore

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
SYSTEM = {"role": "system", "content": "Be exact."}
USER = {"role": "user", "content": "2+2?"}
FOUR = {"role": "assistant", "content": "4"}
FIVE = {"role": "assistant", "content": "5"}
GOOD = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}

# One pair, (system, user) -> 4 over 5, in each spelling users have.
SPELLINGS: list[Mapping[str, Any]] = [
    {"prompt": [SYSTEM, USER], "chosen": "4", "rejected": "5"},
    {"prompt": [SYSTEM, USER], "chosen": [FOUR], "rejected": FIVE},
    {"messages": [SYSTEM, USER], "chosen": FOUR, "rejected": [FIVE]},
    {"chosen": [SYSTEM, USER, FOUR], "rejected": [SYSTEM, USER, FIVE]},  # implicit prompt
]


def _renderer():  # type: ignore[no-untyped-def]
    return get_renderer(
        "qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    )


def _load(rows: list[Mapping[str, Any]], **config: Any) -> list[PreferenceRow]:
    store = FakeDatasetStore({"prefs.jsonl": rows})
    return load_preference_rows(store, "prefs.jsonl", DpoConfig(dataset="prefs.jsonl", **config))


def test_every_spelling_gives_the_same_row_and_the_same_datums() -> None:
    expected = PreferenceRow(prompt=(SYSTEM, USER), chosen=(FOUR,), rejected=(FIVE,))
    views = []
    for row in SPELLINGS:
        assert _load([row]) == [expected], row
        store = FakeDatasetStore({"prefs.jsonl": [row], "test.jsonl": [row]})
        config = DpoConfig(dataset="prefs.jsonl", test_dataset="test.jsonl")
        train, test = build_preference_data(config, _renderer(), store)
        assert train.num_pairs == test.num_pairs == 1
        views.append(train.datums)
    # Implicit-prompt DPO trains on exactly the datums of explicit-prompt DPO.
    assert all(view == views[0] for view in views)
    assert _load([GOOD]) == [
        PreferenceRow(prompt=(USER,), chosen=(FOUR,), rejected=(FIVE,)),
    ]


def test_an_implicit_prompt_keeps_a_multi_turn_history() -> None:
    history = [USER, FOUR, {"role": "user", "content": "and 3+3?"}]
    six = {"role": "assistant", "content": "6"}
    seven = {"role": "assistant", "content": "7"}
    (row,) = _load([{"chosen": [*history, six], "rejected": [*history, seven]}])
    assert row == PreferenceRow(prompt=tuple(history), chosen=(six,), rejected=(seven,))


def test_column_names_are_configurable() -> None:
    rows: list[Mapping[str, Any]] = [{"question": "2+2?", "good": "4", "bad": "5"}]
    config = {"prompt_key": "question", "chosen_key": "good", "rejected_key": "bad"}
    assert _load(rows, **config) == _load([GOOD])


def test_test_size_caps_the_held_out_rows() -> None:
    store = FakeDatasetStore({"p.jsonl": [GOOD] * 5, "t.jsonl": [GOOD] * 5})
    config = DpoConfig(dataset="p.jsonl", test_dataset="t.jsonl", test_size=2)
    train, test = build_preference_data(config, _renderer(), store)
    assert (train.num_pairs, test.num_pairs) == (5, 2)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"prompt": "q", "chosen": "4"},
            "prefs.jsonl:2: a preference row needs column(s) 'rejected'; the row has "
            "'prompt', 'chosen' (set the column names if the dataset spells them "
            "differently: rejected_key)",
        ),
        (
            {"chosen": [USER, FOUR], "rejected": [SYSTEM, FIVE]},
            "prefs.jsonl:2: a preference row without a 'prompt' column needs chosen and "
            "rejected message lists that start with the same prompt",
        ),
        ({"chosen": "4", "rejected": "5"}, "that start with the same prompt"),
        ({"prompt": "q", "chosen": 4, "rejected": "5"}, "column 'chosen' must be a string"),
        ({"prompt": "q", "chosen": "4", "rejected": []}, "column 'rejected' must be a string"),
        ({"prompt": [], "chosen": "4", "rejected": "5"}, "column 'prompt' must be a string"),
        ({"prompt": [{"content": "x"}], "chosen": "4", "rejected": "5"}, "item 0"),
        (
            {"prompt": "q", "chosen": "4", "rejected": [FOUR, USER]},
            "the last message of 'rejected' must be the assistant's, got role 'user'",
        ),
    ],
)
def test_a_malformed_row_names_path_line_and_problem(row: Mapping[str, Any], message: str) -> None:
    with pytest.raises(InvalidDataError, match=r"^prefs\.jsonl:2: ") as info:
        _load([GOOD, row])
    assert message in str(info.value)


def test_rows_of_another_kind_are_refused_naming_the_keys_to_set() -> None:
    conversation = {"messages": [USER, FOUR]}
    with pytest.raises(InvalidDataError) as info:
        _load([conversation])
    assert str(info.value) == (
        "prefs.jsonl:1: expected preference rows ('chosen' + 'rejected'), got a conversation "
        "row (columns 'messages') (set chosen_key, rejected_key if the dataset spells them "
        "differently)"
    )
    # A held-out set in another format than the training set is refused the same way.
    store = FakeDatasetStore({"p.jsonl": [GOOD], "t.jsonl": [{"prompt": "q", "answer": "4"}]})
    config = DpoConfig(dataset="p.jsonl", test_dataset="t.jsonl")
    with pytest.raises(InvalidDataError, match=r"t\.jsonl:1: expected preference rows"):
        build_preference_data(config, _renderer(), store)


def test_an_empty_dataset_is_refused() -> None:
    with pytest.raises(InvalidDataError, match=r"prefs\.jsonl: the dataset holds no rows"):
        _load([])


@pytest.mark.parametrize("field", ["prompt_key", "chosen_key", "rejected_key"])
def test_blank_column_names_are_refused(field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{field} must be a column name"):
        DpoConfig(**{field: " "})


def test_a_dataset_directory_without_the_datasets_package_gives_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    store = FilesDatasetStore(root=str(tmp_path))
    with pytest.raises(AdapterUnavailableError, match=r"pip install 'crucible-train\[datasets\]'"):
        build_preference_data(DpoConfig(dataset="saved:train"), _renderer(), store)
