"""DatasetStore contract: ordered lazy records with line numbers, typed errors by line.

Factories read sources relative to the ``tmp_path`` they were given (see conftest); the
fake keeps its sources in memory and gets them through ``add_source``.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest

from crucible_train.errors import (
    BackendNotConfiguredError,
    DatasetFormatError,
    DatasetNotFoundError,
)
from crucible_train.ports import DatasetRecord

from fakes import FakeDatasetStore

PORT = "dataset_store"


def write(store: object, tmp_path: pathlib.Path, name: str, content: str | bytes) -> str:
    """Make ``content`` the source ``name`` of ``store``: a file under ``tmp_path`` (where
    the factories' stores read), or, for the fake that holds sources in memory, its own."""
    if isinstance(store, FakeDatasetStore):
        return store.add_source(name, content)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return name


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_records_in_order_with_line_numbers(working_adapter, tmp_path):
    rows = [{"prompt": "1+1", "answer": "2"}, {"prompt": "2+2", "answer": "4", "tags": ["x"]}]
    source = write(
        working_adapter, tmp_path, "data/train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n"
    )
    records = list(working_adapter.iter_records(source))
    assert all(isinstance(record, DatasetRecord) for record in records)
    assert [record.line for record in records] == [1, 2]
    assert [dict(record.data) for record in records] == rows
    assert all(record.source.endswith("train.jsonl") for record in records)


def test_blank_lines_are_skipped_but_counted(working_adapter, tmp_path):
    source = write(working_adapter, tmp_path, "gaps.jsonl", '\n{"a": 1}\n   \n\n{"a": 2}\n\n')
    records = list(working_adapter.iter_records(source))
    assert [(record.line, record.data["a"]) for record in records] == [(2, 1), (5, 2)]


def test_empty_dataset_yields_nothing(working_adapter, tmp_path):
    assert (
        list(working_adapter.iter_records(write(working_adapter, tmp_path, "empty.jsonl", "")))
        == []
    )


def test_returns_an_iterator(working_adapter, tmp_path):
    records = working_adapter.iter_records(
        write(working_adapter, tmp_path, "one.jsonl", '{"a": 1}\n')
    )
    assert isinstance(records, Iterator)
    assert next(records).data == {"a": 1}
    with pytest.raises(StopIteration):
        next(records)


def test_missing_source_raises_not_found(working_adapter):
    with pytest.raises(DatasetNotFoundError, match=r"no-such-file\.jsonl") as info:
        list(working_adapter.iter_records("no-such-file.jsonl"))
    assert isinstance(info.value, FileNotFoundError)


def test_records_before_a_bad_line_are_yielded_first(working_adapter, tmp_path):
    source = write(working_adapter, tmp_path, "bad.jsonl", '{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n')
    records = working_adapter.iter_records(source)
    assert next(records).line == 1
    assert next(records).line == 2
    with pytest.raises(DatasetFormatError, match=r"bad\.jsonl:3\b") as info:
        next(records)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "line",
    ["[1, 2, 3]", '"just a string"', "42", "null", "true", "{not json}", '{"a": 1} trailing'],
)
def test_lines_that_are_not_json_objects_raise_format_error(working_adapter, tmp_path, line):
    source = write(working_adapter, tmp_path, "mixed.jsonl", '{"ok": true}\n' + line + "\n")
    with pytest.raises(DatasetFormatError, match=r"mixed\.jsonl:2\b"):
        list(working_adapter.iter_records(source))


def test_invalid_utf8_raises_format_error_naming_the_line(working_adapter, tmp_path):
    source = write(working_adapter, tmp_path, "latin1.jsonl", b'{"a": 1}\n{"name": "caf\xe9"}\n')
    records = working_adapter.iter_records(source)
    assert next(records).line == 1
    with pytest.raises(DatasetFormatError, match=r"latin1\.jsonl:2\b"):
        next(records)


def test_independent_iterations_do_not_interfere(working_adapter, tmp_path):
    source = write(
        working_adapter, tmp_path, "n.jsonl", "".join(f'{{"i": {i}}}\n' for i in range(5))
    )
    first = working_adapter.iter_records(source)
    second = working_adapter.iter_records(source)
    assert next(first).data == {"i": 0}
    assert [record.data["i"] for record in second] == [0, 1, 2, 3, 4]
    assert [record.data["i"] for record in first] == [1, 2, 3, 4]


def test_unconfigured_adapter_refuses(unconfigured_adapter):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        unconfigured_adapter.iter_records("train.jsonl")
