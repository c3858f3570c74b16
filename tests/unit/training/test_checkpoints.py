"""checkpoints.jsonl records and metrics truncation on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_train.core.training.checkpoints import (
    CheckpointLog,
    CheckpointRecord,
    atomic_write_text,
    truncate_metrics,
)
from crucible_train.errors import InvalidDataError


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


def test_log_appends_and_finds_the_last_resumable_and_sampler_records(tmp_path: Path) -> None:
    log = CheckpointLog(tmp_path)
    assert log.records() == []
    assert log.last_resumable() is None
    log.append(CheckpointRecord(name="a", step=2, state_path="/a", sampler_path="/as"))
    log.append(CheckpointRecord(name="b", step=4, state_path="/b"))
    log.append(CheckpointRecord(name="c", step=4, sampler_path="/cs"))
    assert [r.name for r in log.records()] == ["a", "b", "c"]
    assert log.last_resumable() == log.records()[1]
    assert log.last_with_sampler() == log.records()[2]
    assert not list(tmp_path.glob(".checkpoints.jsonl.*"))  # no temporary left behind


def test_a_broken_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.jsonl").write_text('{"name": "a", "step": 1}\n{oops\n')
    with pytest.raises(InvalidDataError, match=r"checkpoints.jsonl:2: not JSON"):
        CheckpointLog(tmp_path).records()
    (tmp_path / "checkpoints.jsonl").write_text('{"name": "a"}\n')
    with pytest.raises(InvalidDataError, match=r":1: a checkpoint record needs"):
        CheckpointLog(tmp_path).records()


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def _write_rows(path: Path, rows: list[dict[str, object]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def test_truncate_drops_rows_of_rerun_steps_and_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows: list[dict[str, object]] = [{"step": s, "x": s} for s in range(5)]
    _write_rows(path, rows, tail='{"step": 5, "x"')
    with path.open("ab") as handle:  # a sink holding the file open keeps working
        assert truncate_metrics(tmp_path, 3) == 3
        handle.write(b'{"step": 3}\n')
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        *rows[:3],
        {"step": 3},
    ]


def test_truncate_rewrites_when_dropped_rows_are_not_a_suffix(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, [{"step": 0}, {"step": 4}, {"step": 1}, {"note": "no step"}])
    assert truncate_metrics(tmp_path, 2) == 1
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"step": 0},
        {"step": 1},
        {"note": "no step"},
    ]


def test_truncate_without_a_file_or_rows_to_drop_changes_nothing(tmp_path: Path) -> None:
    assert truncate_metrics(tmp_path, 0) == 0
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, [{"step": 0}])
    before = path.stat().st_ino
    assert truncate_metrics(tmp_path, 1) == 0
    assert path.stat().st_ino == before
