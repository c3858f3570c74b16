"""RunStore contract: records in order, metric rewind, atomic array sets; files and the fake.

The run store is not a ``containers.yaml`` port (the container builds one per run
directory), so this module has no ``PORT`` and parametrizes its own fixture: each case is a
store plus the metrics sink whose rows its rewind acts on (the files store rewinds what the
files sink writes; the fake rewinds the recording sink's rows).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Iterator

import attrs
import numpy as np
import pytest

from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.ports.metrics import MetricsSink
from crucible_train.ports.run_store import CheckpointRecord, RunStore

from fakes import FakeRunStore


@attrs.define
class Case:
    """A store, the sink writing the rows it rewinds, and how to read the rows' steps."""

    store: RunStore
    sink: MetricsSink
    steps: Callable[[], list[int | None]]


def _files(tmp_path: pathlib.Path) -> Case:
    run = tmp_path / "run"
    sink = FilesMetricsSink(run_dir=str(run))

    def steps() -> list[int | None]:
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line).get("step") for line in lines]

    return Case(store=FilesRunStore(run), sink=sink, steps=steps)


def _fake(_tmp_path: pathlib.Path) -> Case:
    store = FakeRunStore()
    return Case(store=store, sink=store.metrics, steps=lambda: [s for s, _ in store.metrics.rows])


@pytest.fixture(params=[_files, _fake], ids=["files", "fake"])
def case(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Case]:
    built: Case = request.param(tmp_path)
    yield built
    built.sink.close()


def test_store_satisfies_the_port(case):
    assert isinstance(case.store, RunStore)
    assert RunStore in type(case.store).__mro__
    assert isinstance(case.store.location, str)
    assert case.store.location


def test_a_new_run_holds_nothing(case):
    assert case.store.checkpoint_records() == []
    assert case.store.load_arrays("dpo_reference") is None
    assert case.store.rewind_metrics(0) == 0


def test_records_come_back_equal_and_in_order(case):
    records = [
        CheckpointRecord(name="000010", step=10, epoch=1, batch=2, state_path="/s10"),
        CheckpointRecord(name="000020", step=20, state_path="/s20", sampler_path="/w20"),
        CheckpointRecord(
            name="final",
            step=30,
            state_path="/s",
            sampler_path="/w",
            final=True,
            extra={"reference_sampler_path": "/ref", "elapsed_tokens": 7},
        ),
    ]
    for record in records:
        case.store.append_checkpoint_record(record)
    assert case.store.checkpoint_records() == records


def test_the_same_record_twice_is_two_records(case):
    record = CheckpointRecord(name="a", step=1)
    case.store.append_checkpoint_record(record)
    case.store.append_checkpoint_record(record)
    assert case.store.checkpoint_records() == [record, record]


def test_records_read_are_a_snapshot(case):
    case.store.append_checkpoint_record(CheckpointRecord(name="a", step=1))
    seen = case.store.checkpoint_records()
    seen.clear()
    assert len(case.store.checkpoint_records()) == 1


def test_rewind_drops_the_rows_of_steps_to_rerun_and_keeps_unstepped_rows(case):
    for step in range(5):
        case.sink.log_metrics({"loss": float(step)}, step=step)
    case.sink.log_metrics({"note": 1.0}, step=None)
    assert case.store.rewind_metrics(3) == 2
    assert case.steps() == [0, 1, 2, None]
    assert case.store.rewind_metrics(3) == 0  # safe to repeat


def test_rewind_then_logging_again_ends_like_an_uninterrupted_run(case):
    for step in range(4):
        case.sink.log_metrics({"loss": float(step)}, step=step)
    case.store.rewind_metrics(2)
    for step in range(2, 4):
        case.sink.log_metrics({"loss": float(step)}, step=step)
    assert case.steps() == [0, 1, 2, 3]


def test_arrays_round_trip_with_dtype_shape_values_and_order(case):
    arrays = {
        "train": np.linspace(-3.0, 1.5, 8).reshape(4, 2),
        "test": np.zeros((0, 2), dtype=np.float64),
        "ids": np.arange(5, dtype=np.int64),
        "fingerprint": np.array("ab" * 32),
    }
    case.store.save_arrays("dpo_reference", arrays)
    loaded = case.store.load_arrays("dpo_reference")
    assert loaded is not None
    assert list(loaded) == list(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype
        assert loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key], value)
    assert str(loaded["fingerprint"]) == "ab" * 32


def test_saving_arrays_replaces_the_whole_set(case):
    case.store.save_arrays("x", {"a": np.ones(2), "b": np.ones(3)})
    case.store.save_arrays("x", {"a": np.zeros(4)})
    loaded = case.store.load_arrays("x")
    assert loaded is not None
    assert list(loaded) == ["a"]
    np.testing.assert_array_equal(loaded["a"], np.zeros(4))
    assert case.store.load_arrays("y") is None  # names are separate


def test_saved_arrays_do_not_follow_later_mutation(case):
    values = np.ones(3)
    case.store.save_arrays("x", {"a": values})
    values[:] = 7.0
    loaded = case.store.load_arrays("x")
    assert loaded is not None
    np.testing.assert_array_equal(loaded["a"], np.ones(3))
    loaded["a"][:] = 9.0
    again = case.store.load_arrays("x")
    assert again is not None
    np.testing.assert_array_equal(again["a"], np.ones(3))


def test_locations_are_named_for_messages(case):
    where = case.store.arrays_location("dpo_reference")
    assert isinstance(where, str)
    assert "dpo_reference" in where
