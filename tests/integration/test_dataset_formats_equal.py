"""Must show (issue 14): the same rows as JSONL, JSON, CSV, Parquet and a saved HF dataset
give identical normalised rows and, through the SFT datum builders, identical datums."""

from __future__ import annotations

import csv
import json

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.core.datasets import ConversationRow, PromptCompletionRow, load_rows
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.data import conversations_to_datums

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


def _datum_view(data):
    return [
        (
            d.model_input.to_ints(),
            {k: v.array.tolist() for k, v in sorted(d.loss_fn_inputs.items())},
        )
        for d in data.datums
    ]


@pytest.mark.parametrize(
    ("rows", "row_class", "train_on_what"),
    [
        (PROMPT_COMPLETION, PromptCompletionRow, "customized"),
        (CONVERSATIONS, ConversationRow, "last_assistant_message"),
    ],
)
def test_every_source_gives_the_same_rows_and_datums(tmp_path, rows, row_class, train_on_what):
    store = FilesDatasetStore(root=str(tmp_path))
    sources = _write_all(tmp_path, row_class.__name__, rows)
    renderer = get_renderer("qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS))
    normalised = {source: load_rows(store, source) for source in sources}
    reference = normalised[sources[0]]
    assert len(reference) == len(rows)
    assert all(isinstance(row, row_class) for row in reference)
    datums = {}
    for source, got in normalised.items():
        assert got == reference, source
        conversations = [row.conversation() for row in got]  # type: ignore[union-attr]
        datums[source] = _datum_view(
            conversations_to_datums(conversations, renderer, train_on_what=train_on_what)
        )
    assert len(datums[sources[0]]) == len(rows)
    for source, view in datums.items():
        assert view == datums[sources[0]], source
    if row_class is PromptCompletionRow:
        # The loss is on the completion only: far fewer weighted targets than positions.
        tokens, inputs = datums[sources[0]][0]
        assert 0 < sum(inputs["weights"]) < len(tokens) / 2
