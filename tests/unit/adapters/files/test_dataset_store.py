"""Unit tests for FilesDatasetStore: path resolution, error messages, laziness, encodings."""

from __future__ import annotations

import json
import pathlib
import tracemalloc

import pytest

from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.errors import (
    ConfigurationError,
    DatasetFormatError,
    DatasetNotFoundError,
    DatasetStoreError,
)


@pytest.fixture
def store(tmp_path: pathlib.Path) -> FilesDatasetStore:
    return FilesDatasetStore(root=str(tmp_path))


def write(path: pathlib.Path, content: str | bytes) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def first_error(store: FilesDatasetStore, source: str) -> str:
    with pytest.raises(DatasetFormatError) as info:
        list(store.iter_records(source))
    return str(info.value)


# --- construction and resolution ----------------------------------------------------------


@pytest.mark.parametrize("root", ["data", "", "./data"])
def test_relative_root_is_refused(root):
    with pytest.raises(ConfigurationError, match="absolute"):
        FilesDatasetStore(root=root)


def test_relative_sources_resolve_against_root(tmp_path, store):
    write(tmp_path / "sets" / "a.jsonl", '{"x": 1}\n')
    [record] = store.iter_records("sets/a.jsonl")
    assert record.source == str(tmp_path / "sets" / "a.jsonl")
    assert store.resolve("sets/../sets/a.jsonl") == str(tmp_path / "sets" / "a.jsonl")


def test_absolute_sources_are_used_as_given(tmp_path):
    elsewhere = write(tmp_path / "elsewhere" / "b.jsonl", '{"y": 2}\n')
    store = FilesDatasetStore(root=str(tmp_path / "unrelated-root"))
    [record] = store.iter_records(str(elsewhere))
    assert (record.source, record.line, record.data) == (str(elsewhere), 1, {"y": 2})


def test_missing_file_is_reported_at_call_time_with_the_resolved_path(tmp_path, store):
    with pytest.raises(DatasetNotFoundError) as info:
        store.iter_records("nope/train.jsonl")
    assert str(tmp_path / "nope" / "train.jsonl") in str(info.value)


def test_file_deleted_before_iteration_is_not_found(tmp_path, store):
    path = write(tmp_path / "gone.jsonl", '{"a": 1}\n')
    records = store.iter_records("gone.jsonl")
    path.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"gone\.jsonl"):
        next(records)


def test_directory_without_data_files_is_refused(tmp_path, store):
    (tmp_path / "adir").mkdir()
    with pytest.raises(DatasetStoreError, match="directory without data files"):
        store.iter_records("adir")


@pytest.mark.parametrize("source", ["", None, 3])
def test_empty_or_non_path_source_is_refused(store, source):
    with pytest.raises(DatasetStoreError, match="source"):
        store.iter_records(source)


# --- error messages -----------------------------------------------------------------------


def test_json_error_names_path_line_and_column(tmp_path, store):
    path = write(tmp_path / "d.jsonl", '{"a": 1}\n\n{"a": 1 "b": 2}\n')
    message = first_error(store, "d.jsonl")
    assert message.startswith(f"{path}:3: not valid JSON: Expecting ',' delimiter (column 9)")


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("[1]", "an array"),
        ('"s"', "a string"),
        ("1.5", "a number"),
        ("null", "null"),
        ("false", "a boolean"),
    ],
)
def test_non_object_json_says_what_it_got(tmp_path, store, line, kind):
    path = write(tmp_path / "d.jsonl", '{"ok": 1}\n' + line + "\n")
    assert first_error(store, "d.jsonl") == (
        f"{path}:2: expected a JSON object ({{...}}), got {kind}"
    )


@pytest.mark.parametrize(
    "content",
    ['[\n  {"a": 1},\n  {"a": 2}\n]\n', '[{"a": 1}, {"a": 2}]\n', '\n\n  [{"a": 1}]'],
)
def test_json_array_in_a_jsonl_file_gets_a_jsonl_hint(tmp_path, store, content):
    write(tmp_path / "data.jsonl", content)
    message = first_error(store, "data.jsonl")
    assert message.endswith("this looks like a JSON array; write one object per line (JSONL)")


def test_array_on_a_later_line_gets_no_hint(tmp_path, store):
    write(tmp_path / "d.jsonl", '{"a": 1}\n[1, 2]\n')
    assert "JSONL" not in first_error(store, "d.jsonl")


def test_json_suffix_is_read_as_jsonl(tmp_path, store):
    write(tmp_path / "d.json", '{"a": 1}\n{"a": 2}\n')
    assert [r.data["a"] for r in store.iter_records("d.json")] == [1, 2]


def test_invalid_utf8_names_the_line_and_byte(tmp_path, store):
    path = write(tmp_path / "d.jsonl", b'{"a": 1}\n{"a": 2}\n{"name": "caf\xe9"}\n')
    message = first_error(store, "d.jsonl")
    assert message.startswith(f"{path}:3: invalid UTF-8 at byte 14 of the line")


# --- encodings and line endings -----------------------------------------------------------


def test_utf8_bom_crlf_and_non_ascii_are_handled(tmp_path, store):
    write(tmp_path / "d.jsonl", '\ufeff{"q": "¿qué?"}\r\n{"q": "日本"}\r\n'.encode())
    assert [(r.line, r.data["q"]) for r in store.iter_records("d.jsonl")] == [
        (1, "¿qué?"),
        (2, "日本"),
    ]


def test_unicode_line_separators_inside_strings_do_not_split_records(tmp_path, store):
    write(tmp_path / "d.jsonl", json.dumps({"t": "a\u2028b\x85c\rd"}, ensure_ascii=False) + "\n")
    [record] = store.iter_records("d.jsonl")
    assert record.data == {"t": "a\u2028b\x85c\rd"}


def test_last_line_without_newline_is_read(tmp_path, store):
    write(tmp_path / "d.jsonl", '{"a": 1}\n{"a": 2}')
    assert [r.line for r in store.iter_records("d.jsonl")] == [1, 2]


# --- laziness -----------------------------------------------------------------------------


def test_streaming_keeps_memory_flat(tmp_path, store):
    line = json.dumps({"prompt": "x" * 200, "answer": "y" * 200}) + "\n"
    write(tmp_path / "big.jsonl", line * 20_000)  # about 8 MB
    tracemalloc.start()
    try:
        count = sum(1 for _ in store.iter_records("big.jsonl"))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 1_000_000


def test_abandoned_iteration_closes_the_file(tmp_path, store):
    write(tmp_path / "d.jsonl", '{"a": 1}\n{"a": 2}\n')
    records = store.iter_records("d.jsonl")
    next(records)
    records.close()  # an unclosed file would surface as a ResourceWarning (an error here)
    with pytest.raises(StopIteration):
        next(records)
