"""The sender's shared state (``delivery/progress.py``): state.json from one moment."""

from __future__ import annotations

import logging

from crucible_train.adapters.delivery.progress import DeliveryProgress
from crucible_train.adapters.delivery.segments import SpoolFiles
from crucible_train.adapters.delivery.spool import load_state


def _progress(spool_dir, files):
    return DeliveryProgress(
        spool_dir=spool_dir, name="svc", files=files, acked=3, run_state={"id": "r"}, rejected=0
    )


def test_persist_writes_the_watermarks_and_the_run_state(tmp_path):
    files = SpoolFiles(tmp_path, next_seq_hint=5)
    progress = _progress(tmp_path, files)
    assert progress.durable == 5  # what the segments (or the hint) say is on disk
    progress.recorded_exit_code = 2
    with progress.cond:
        progress.persist_locked()
    state = load_state(tmp_path)
    assert (state["next_seq"], state["acked"], state["exit_code"]) == (5, 3, 2)
    assert state["run"] == {"id": "r"}
    assert state["finished"] is False  # a reopened spool is never "already finished"
    files.close()


def test_a_state_file_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    files = SpoolFiles(tmp_path, next_seq_hint=0)
    progress = _progress(tmp_path / "gone", files)  # no such directory: the write fails
    with caplog.at_level(logging.ERROR), progress.cond:
        progress.persist_locked()
    assert "svc: cannot write" in caplog.text
    assert "state.json" in caplog.text
    files.close()
