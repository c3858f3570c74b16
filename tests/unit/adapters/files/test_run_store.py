"""FilesRunStore: the 0.2 run-directory files, byte for byte, and the metric rewind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.files.run_store import CHECKPOINTS_FILE, FilesRunStore
from crucible_train.errors import InvalidDataError
from crucible_train.ports.run_store import CheckpointRecord


def test_checkpoints_file_is_one_json_object_per_line_as_in_0_2(tmp_path: Path) -> None:
    store = FilesRunStore(tmp_path / "run")  # created on the first write
    store.append_checkpoint_record(CheckpointRecord(name="000002", step=2, state_path="/s"))
    store.append_checkpoint_record(
        CheckpointRecord(name="final", step=4, sampler_path="/w", final=True, extra={"k": 1})
    )
    text = (tmp_path / "run" / CHECKPOINTS_FILE).read_text(encoding="utf-8")
    assert text == (
        '{"name": "000002", "step": 2, "epoch": 0, "batch": 0, "state_path": "/s"}\n'
        '{"name": "final", "step": 4, "epoch": 0, "batch": 0, "sampler_path": "/w", '
        '"final": true, "k": 1}\n'
    )
    assert not list((tmp_path / "run").glob(".checkpoints.jsonl.*"))  # no temporary left


def test_records_written_by_0_2_are_read_back(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINTS_FILE).write_text(
        '{"name": "000020", "step": 20, "epoch": 1, "batch": 3, "state_path": "/s", '
        '"elapsed_tokens": 7}\n\n',
        encoding="utf-8",
    )
    assert FilesRunStore(tmp_path).checkpoint_records() == [
        CheckpointRecord(
            name="000020", step=20, epoch=1, batch=3, state_path="/s", extra={"elapsed_tokens": 7}
        )
    ]


def test_a_broken_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINTS_FILE).write_text('{"name": "a", "step": 1}\n{oops\n')
    with pytest.raises(InvalidDataError, match=r"checkpoints.jsonl:2: not JSON"):
        FilesRunStore(tmp_path).checkpoint_records()
    (tmp_path / CHECKPOINTS_FILE).write_text('{"name": "a"}\n')
    with pytest.raises(InvalidDataError, match=r":1: a checkpoint record needs"):
        FilesRunStore(tmp_path).checkpoint_records()
    (tmp_path / CHECKPOINTS_FILE).write_text("[1, 2]\n")
    with pytest.raises(InvalidDataError, match=r":1: expected a JSON object"):
        FilesRunStore(tmp_path).checkpoint_records()


def test_an_append_replaces_the_whole_file_atomically(tmp_path: Path) -> None:
    store = FilesRunStore(tmp_path)
    store.append_checkpoint_record(CheckpointRecord(name="a", step=1))
    before = (tmp_path / CHECKPOINTS_FILE).stat().st_ino
    store.append_checkpoint_record(CheckpointRecord(name="b", step=2))
    # A new file renamed over the old one: a reader holding the old one never sees a mix.
    assert (tmp_path / CHECKPOINTS_FILE).stat().st_ino != before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINTS_FILE]


def _write_rows(path: Path, rows: list[dict[str, object]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def test_rewind_drops_rows_of_rerun_steps_and_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows: list[dict[str, object]] = [{"step": s, "x": s} for s in range(5)]
    _write_rows(path, rows, tail='{"step": 5, "x"')
    with path.open("ab") as handle:  # a sink holding the file open keeps working
        assert FilesRunStore(tmp_path).rewind_metrics(3) == 3
        handle.write(b'{"step": 3}\n')
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        *rows[:3],
        {"step": 3},
    ]


def test_rewind_rewrites_when_dropped_rows_are_not_a_suffix(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, [{"step": 0}, {"step": 4}, {"step": 1}, {"note": "no step"}])
    assert FilesRunStore(tmp_path).rewind_metrics(2) == 1
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"step": 0},
        {"step": 1},
        {"note": "no step"},
    ]


def test_rewind_without_a_file_or_rows_to_drop_changes_nothing(tmp_path: Path) -> None:
    assert FilesRunStore(tmp_path).rewind_metrics(0) == 0
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, [{"step": 0}])
    before = path.stat().st_ino
    assert FilesRunStore(tmp_path).rewind_metrics(1) == 0
    assert path.stat().st_ino == before


def test_rewind_acts_on_the_file_the_files_metrics_sink_writes(tmp_path: Path) -> None:
    sink = FilesMetricsSink(run_dir=str(tmp_path))
    for step in range(4):
        sink.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert FilesRunStore(tmp_path).rewind_metrics(2) == 2
    sink.log_metrics({"loss": 0.5}, step=2)
    sink.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == [0, 1, 2]


def _arrays() -> dict[str, np.ndarray]:
    return {
        "train": np.arange(6, dtype=np.float64).reshape(3, 2) / 7,
        "test": np.zeros((0, 2), dtype=np.float64),
        "fingerprint": np.array("f" * 64),
    }


def _as_0_2_wrote(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``ReferenceLogprobs.save`` of crucible-train 0.2, verbatim in effect."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def test_arrays_are_the_npz_file_0_2_wrote_byte_for_byte(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    _as_0_2_wrote(old / "dpo_reference.npz", _arrays())
    FilesRunStore(new).save_arrays("dpo_reference", _arrays())
    assert (new / "dpo_reference.npz").read_bytes() == (old / "dpo_reference.npz").read_bytes()
    assert FilesRunStore(new).arrays_location("dpo_reference") == str(new / "dpo_reference.npz")


def test_arrays_written_by_0_2_load_with_their_names_in_order(tmp_path: Path) -> None:
    _as_0_2_wrote(tmp_path / "dpo_reference.npz", _arrays())
    loaded = FilesRunStore(tmp_path).load_arrays("dpo_reference")
    assert loaded is not None
    assert list(loaded) == ["train", "test", "fingerprint"]
    for key, value in _arrays().items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)
    assert str(loaded["fingerprint"]) == "f" * 64


def test_unreadable_arrays_are_reported_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "dpo_reference.npz").write_bytes(b"not a zip file")
    with pytest.raises(InvalidDataError, match=r"dpo_reference.npz: not a readable array file"):
        FilesRunStore(tmp_path).load_arrays("dpo_reference")


def test_repr_and_location_name_the_run_directory(tmp_path: Path) -> None:
    store = FilesRunStore(tmp_path)
    assert store.location == str(tmp_path)
    assert repr(store) == f"FilesRunStore({str(tmp_path)!r})"
