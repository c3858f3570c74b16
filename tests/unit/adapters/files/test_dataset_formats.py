"""The files dataset store's other formats: JSON arrays, CSV, Parquet, HF dataset dirs."""

from __future__ import annotations

import json
import sys

import pytest

from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.errors import AdapterUnavailableError, DatasetFormatError, DatasetStoreError

ROWS = [
    {"prompt": "2+2?", "answer": "4"},
    {"prompt": "3+3?", "answer": "6"},
    {"prompt": "1+4?", "answer": "5"},
]


@pytest.fixture
def store(tmp_path):
    return FilesDatasetStore(root=str(tmp_path))


def _all(store, source):
    return list(store.iter_records(source))


def test_json_array_rows_are_numbered(tmp_path, store):
    (tmp_path / "d.json").write_text(json.dumps(ROWS, indent=2))
    records = _all(store, "d.json")
    assert [r.data for r in records] == ROWS
    assert [(r.line, r.unit) for r in records] == [(1, "row"), (2, "row"), (3, "row")]
    assert records[1].where == f"{tmp_path / 'd.json'} row 2"


def test_json_array_item_that_is_not_an_object_names_the_row(tmp_path, store):
    (tmp_path / "d.json").write_text('[{"a": 1}, 2]')
    with pytest.raises(DatasetFormatError, match=r"d\.json row 2: expected a JSON object"):
        _all(store, "d.json")


def test_broken_json_array_names_the_line(tmp_path, store):
    (tmp_path / "d.json").write_text('[\n{"a": 1},\n{"a": }\n]')
    with pytest.raises(DatasetFormatError, match=r"d\.json:3: not valid JSON"):
        _all(store, "d.json")


def test_csv_rows_keep_strings_and_decode_json_cells(tmp_path, store):
    (tmp_path / "d.csv").write_text(
        'prompt,answer,messages\n"a, b",[x] y,"[{""role"": ""user"", ""content"": ""hi""}]"\n'
        '"multi\nline",2,{}\n'
    )
    records = _all(store, "d.csv")
    assert records[0].data == {
        "prompt": "a, b",
        "answer": "[x] y",  # not JSON: stays text
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert records[1].data == {"prompt": "multi\nline", "answer": "2", "messages": {}}
    assert [(r.line, r.unit) for r in records] == [(2, "line"), (3, "line")]


def test_csv_row_with_the_wrong_number_of_cells_names_its_line(tmp_path, store):
    (tmp_path / "d.csv").write_text("prompt,answer\na,1\nb,2,3\n")
    records = store.iter_records("d.csv")
    assert next(records).data == {"prompt": "a", "answer": "1"}
    with pytest.raises(DatasetFormatError, match=r"d\.csv:3: 3 cells for the 2 columns"):
        next(records)


def test_csv_without_a_header_is_refused(tmp_path, store):
    (tmp_path / "d.csv").write_text("")
    with pytest.raises(DatasetFormatError, match="header"):
        _all(store, "d.csv")


def test_parquet_streams_every_row_group(tmp_path, store):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"prompt": f"p{i}", "answer": str(i)} for i in range(2500)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet", row_group_size=1000)
    records = _all(store, "d.parquet")
    assert [r.data for r in records] == rows
    assert records[-1].line == 2500
    assert records[-1].unit == "row"


def test_not_a_parquet_file_is_a_format_error(tmp_path, store):
    pytest.importorskip("pyarrow")
    (tmp_path / "d.parquet").write_text("nope")
    with pytest.raises(DatasetFormatError, match=r"d\.parquet: not a readable Parquet file"):
        store.iter_records("d.parquet")


def test_parquet_without_pyarrow_names_the_extra(tmp_path, store, monkeypatch):
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(AdapterUnavailableError, match=r"crucible-train\[datasets\]"):
        store.iter_records("d.parquet")


def test_hf_directory_without_datasets_names_the_extra(tmp_path, store, monkeypatch):
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(AdapterUnavailableError, match=r"crucible-train\[datasets\]"):
        store.iter_records("saved")


def test_saved_dataset_and_dataset_dict_splits(tmp_path, store):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "one"))
    assert [r.data for r in _all(store, "one")] == ROWS
    both = datasets.DatasetDict(
        train=datasets.Dataset.from_list(ROWS[:2]), test=datasets.Dataset.from_list(ROWS[2:])
    )
    both.save_to_disk(str(tmp_path / "dict"))
    assert [r.data for r in _all(store, "dict")] == ROWS[:2]
    assert [r.data for r in _all(store, "dict:test")] == ROWS[2:]
    with pytest.raises(DatasetStoreError, match="no split 'dev'; its splits: train, test"):
        store.iter_records("dict:dev")


def test_directory_of_data_files_goes_through_load_dataset(tmp_path, store):
    pytest.importorskip("datasets")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    records = _all(store, "files")
    assert [r.data for r in records] == ROWS
    assert records[0].unit == "row"
