"""ResultsStore contract: a fingerprinted, ordered, durable log of JSON records.

The results store is not a ``containers.yaml`` port (``eval --out`` names the file), so this
module has no ``PORT`` and parametrizes its own fixture over the files adapter and the fake.
What only a file can show (its bytes, a torn tail, a foreign file) is tested beside the
adapter, in ``tests/unit/adapters/files/test_results_store.py``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

from crucible_train.adapters.files.results_store import FilesResultsStore
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports import ResultsStore

from fakes import FakeResultsStore

Reopen = Callable[[], ResultsStore]


def _files(tmp_path: pathlib.Path) -> tuple[ResultsStore, Reopen]:
    path = tmp_path / "out" / "results.jsonl"  # the folder does not exist yet
    return FilesResultsStore(path), lambda: FilesResultsStore(path)


def _fake(_tmp_path: pathlib.Path) -> tuple[ResultsStore, Reopen]:
    store = FakeResultsStore()
    return store, lambda: store  # the fake's memory is the store itself


@pytest.fixture(params=[_files, _fake], ids=["files", "fake"])
def stores(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> tuple[ResultsStore, Reopen]:
    """A store, and how a later process gets the same log back (a new files object)."""
    made: tuple[ResultsStore, Reopen] = request.param(tmp_path)
    return made


@pytest.fixture
def store(stores: tuple[ResultsStore, Reopen]) -> ResultsStore:
    return stores[0]


RECORDS = [
    {"id": "a", "input": "q", "output": "é", "target": None, "scores": {"m": 1.0}, "error": None},
    {"id": "b", "scores": {}, "error": "ValueError: x", "nested": [1, 2.5, True, {"k": "v"}]},
    {"id": "c"},
]


def test_store_satisfies_the_port(store):
    assert isinstance(store, ResultsStore)
    assert ResultsStore in type(store).__mro__
    assert isinstance(store.location, str)
    assert store.location


def test_a_new_store_reads_as_empty(store):
    assert list(store.records()) == []


def test_records_come_back_equal_and_in_order_across_chunks(store):
    store.open_run("fp")
    store.append(RECORDS[:2])
    store.append([])  # an empty chunk adds nothing
    store.append(RECORDS[2:])
    assert list(store.records()) == RECORDS


def test_a_later_process_reads_the_same_log(stores):
    store, reopen = stores
    store.open_run("fp")
    store.append(RECORDS)
    assert list(reopen().records()) == RECORDS


def test_records_are_a_snapshot(store):
    record = {"id": "a", "scores": {"m": 0.5}}
    store.open_run("fp")
    store.append([record])
    record["scores"]["m"] = 0.0
    first = next(store.records())
    first["id"] = "changed"
    assert list(store.records()) == [{"id": "a", "scores": {"m": 0.5}}]


def test_reading_streams_lazily(store):
    store.open_run("fp")
    store.append([{"id": str(i)} for i in range(1000)])
    stream = store.records()
    assert next(stream) == {"id": "0"}
    assert next(stream) == {"id": "1"}


def test_appending_needs_an_open_run(store):
    with pytest.raises(ConfigurationError, match="open_run"):
        store.append([{"id": "a"}])


def test_a_stored_log_needs_resume_or_overwrite(stores):
    store, reopen = stores
    store.open_run("fp")
    store.append(RECORDS)
    with pytest.raises(
        ConfigurationError, match="already exists; pass --resume to continue it, or choose a new"
    ):
        reopen().open_run("fp")
    assert list(reopen().records()) == RECORDS  # refusing changed nothing


def test_resume_with_the_same_fingerprint_keeps_the_records_and_appends_after(stores):
    store, reopen = stores
    store.open_run("fp")
    store.append(RECORDS[:2])
    later = reopen()
    later.open_run("fp", resume=True)
    assert list(later.records()) == RECORDS[:2]
    later.append(RECORDS[2:])
    assert list(reopen().records()) == RECORDS


def test_resume_refuses_another_runs_fingerprint(stores):
    store, reopen = stores
    store.open_run("aaa")
    store.append(RECORDS)
    with pytest.raises(ConfigurationError) as caught:
        reopen().open_run("bbb", resume=True)
    message = str(caught.value)
    assert "was written by a different run (fingerprint aaa, expected bbb)" in message
    assert "use a new --out or drop --resume" in message
    assert store.location in message
    assert list(reopen().records()) == RECORDS


def test_overwrite_starts_an_empty_log_with_the_new_fingerprint(stores):
    store, reopen = stores
    store.open_run("old")
    store.append(RECORDS)
    later = reopen()
    later.open_run("new", overwrite=True)
    assert list(later.records()) == []
    later.append(RECORDS[:1])
    resumed = reopen()
    resumed.open_run("new", resume=True)  # the header now carries the new fingerprint
    assert list(resumed.records()) == RECORDS[:1]
    with pytest.raises(ConfigurationError, match="different run"):
        reopen().open_run("old", resume=True)


@pytest.mark.parametrize(
    "mode",
    [{}, {"resume": True}, {"overwrite": True}, {"resume": True, "overwrite": True}],
    ids=["new", "resume", "overwrite", "both"],
)
def test_every_mode_starts_a_new_log_on_an_empty_store(stores, mode):
    store, reopen = stores
    store.open_run("fp", **mode)
    store.append(RECORDS[:1])
    assert list(store.records()) == RECORDS[:1]
    with pytest.raises(ConfigurationError, match="different run"):
        reopen().open_run("other", resume=True)  # the new log is headed by "fp"


def test_a_header_without_records_resumes(stores):
    store, reopen = stores
    store.open_run("fp")
    later = reopen()
    later.open_run("fp", resume=True)
    later.append(RECORDS[:1])
    assert list(reopen().records()) == RECORDS[:1]


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "nan", "score": float("nan")},
        {"id": "obj", "value": object()},
        {"id": "\ud800"},  # a lone surrogate is not UTF-8 text
        ["not", "an", "object"],
    ],
    ids=["nan", "object", "surrogate", "list"],
)
def test_a_record_that_is_not_a_json_object_stores_nothing_of_its_chunk(store, bad):
    store.open_run("fp")
    store.append(RECORDS[:1])
    with pytest.raises(InvalidDataError):
        store.append([RECORDS[1], bad])
    assert list(store.records()) == RECORDS[:1]
