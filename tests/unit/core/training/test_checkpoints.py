"""Checkpoint records and the log that finds the resume point (files: see the adapter's tests)."""

from __future__ import annotations

from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord

from fakes import FakeRunStore


def test_record_round_trips_and_keeps_unknown_keys_in_extra() -> None:
    record = CheckpointRecord(
        name="000020",
        step=20,
        epoch=1,
        batch=3,
        state_path="/s",
        sampler_path=None,
        extra={"elapsed_tokens": 7},
    )
    data = record.to_dict()
    assert data == {
        "name": "000020",
        "step": 20,
        "epoch": 1,
        "batch": 3,
        "state_path": "/s",
        "elapsed_tokens": 7,
    }
    assert CheckpointRecord.from_dict(data) == record


def test_log_appends_and_finds_the_last_resumable_and_sampler_records() -> None:
    store = FakeRunStore()
    log = CheckpointLog(store)
    assert log.records() == []
    assert log.last_resumable() is None
    log.append(CheckpointRecord(name="a", step=2, state_path="/a", sampler_path="/as"))
    log.append(CheckpointRecord(name="b", step=4, state_path="/b"))
    log.append(CheckpointRecord(name="c", step=4, sampler_path="/cs"))
    assert [r.name for r in log.records()] == ["a", "b", "c"]
    assert log.last_resumable() == log.records()[1]
    assert log.last_with_sampler() == log.records()[2]
    assert store.records == log.records()
