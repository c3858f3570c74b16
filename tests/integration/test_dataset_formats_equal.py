"""Must show (issue 14): the same rows as JSONL, JSON, CSV, Parquet and a saved HF dataset
give identical rows and, through the ``train sft`` and ``train dpo`` data builders, identical
datums (SFT conversations and prompt-completion rows; DPO pairs in every spelling)."""

from __future__ import annotations

import csv
import json

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.core.datasets import ConversationRow, PromptCompletionRow
from crucible_train.core.renderers import get_renderer
from crucible_train.recipes.dpo import DpoConfig, build_preference_data
from crucible_train.recipes.sft import SftConfig, build_sft_data

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

PROMPT_COMPLETION = [
    {"prompt": "Reverse: abc", "completion": "cba"},
    {"prompt": "Reverse: hello, world", "completion": "dlrow ,olleh"},
    {"prompt": 'Quote: "x"\nnext line', "completion": "ok"},
]
CONVERSATIONS = [
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
        ]
    },
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
]


def _write_all(tmp_path, name, rows):
    """The rows in every format; returns the source names."""
    (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / f"{name}.json").write_text(json.dumps(rows, indent=1))
    with open(tmp_path / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()})
    sources = [f"{name}.jsonl", f"{name}.json", f"{name}.csv"]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"{name}.parquet")
    sources.append(f"{name}.parquet")
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / f"{name}_hf"))
    sources.append(f"{name}_hf")
    return sources


PROMPT_COMPLETION_MESSAGES = [
    {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "completion": [{"role": "assistant", "content": row["completion"]}],
    }
    for row in PROMPT_COMPLETION
]
PREFERENCE = [
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": 'Say "hi",\nthen stop', "chosen": "hi", "rejected": "hello there"},
]
PREFERENCE_MESSAGES = [
    {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }
    for row in PREFERENCE
]
# The implicit prompt: chosen and rejected are whole conversations sharing it.
PREFERENCE_IMPLICIT = [
    {"chosen": row["prompt"] + row["chosen"], "rejected": row["prompt"] + row["rejected"]}
    for row in PREFERENCE_MESSAGES
]


def _renderer():
    return get_renderer("qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS))


def _datum_view(datums):
    return [
        (
            d.model_input.to_ints(),
            {k: v.array.tolist() for k, v in sorted(d.loss_fn_inputs.items())},
        )
        for d in datums
    ]


def _sft_views(tmp_path, name, rows):
    """Per source: the rows and the datums ``train sft`` builds from them."""
    store = FilesDatasetStore(root=str(tmp_path))
    views = {}
    for source in _write_all(tmp_path, name, rows):
        got, data = build_sft_data(store, source, SftConfig(dataset=source), _renderer())
        views[source] = (got, _datum_view(data.datums))
    return views


def _dpo_views(tmp_path, name, rows):
    """Per source: the training and held-out datums ``train dpo`` builds from them."""
    store = FilesDatasetStore(root=str(tmp_path))
    views = {}
    for source in _write_all(tmp_path, name, rows):
        config = DpoConfig(dataset=source, test_dataset=source)
        train, test = build_preference_data(config, _renderer(), store)
        views[source] = (_datum_view(train.datums), _datum_view(test.datums))
    return views


def _all_equal(views):
    first = next(iter(views.values()))
    for source, view in views.items():
        assert view == first, source
    return first


@pytest.mark.parametrize(
    ("rows", "row_class"),
    [
        (PROMPT_COMPLETION, PromptCompletionRow),
        (PROMPT_COMPLETION_MESSAGES, PromptCompletionRow),
        (CONVERSATIONS, ConversationRow),
    ],
)
def test_every_source_gives_the_same_sft_rows_and_datums(tmp_path, rows, row_class):
    views = _sft_views(tmp_path, "sft", rows)
    assert len(views) == 5  # jsonl, json, csv, parquet, saved HF dataset
    got, datums = _all_equal(views)
    assert len(got) == len(datums) == len(rows)
    assert all(isinstance(row, row_class) for row in got)
    if row_class is PromptCompletionRow:
        # The loss is on the completion only: far fewer weighted targets than positions.
        tokens, inputs = datums[0]
        assert 0 < sum(inputs["weights"]) < len(tokens) / 2


def test_prompt_completion_strings_and_message_lists_give_the_same_datums(tmp_path):
    strings = _all_equal(_sft_views(tmp_path, "strings", PROMPT_COMPLETION))
    messages = _all_equal(_sft_views(tmp_path, "messages", PROMPT_COMPLETION_MESSAGES))
    assert strings == messages


@pytest.mark.parametrize("rows", [PREFERENCE, PREFERENCE_MESSAGES, PREFERENCE_IMPLICIT])
def test_every_source_gives_the_same_dpo_datums(tmp_path, rows):
    train, test = _all_equal(_dpo_views(tmp_path, "dpo", rows))
    assert len(train) == len(test) == 2 * len(rows)


def test_every_preference_spelling_gives_the_same_dpo_datums(tmp_path):
    views = []
    for index, rows in enumerate((PREFERENCE, PREFERENCE_MESSAGES, PREFERENCE_IMPLICIT)):
        views.append(_all_equal(_dpo_views(tmp_path, f"dpo{index}", rows)))
    # Implicit-prompt DPO trains on exactly the datums of explicit-prompt DPO.
    assert views[0] == views[1] == views[2]
