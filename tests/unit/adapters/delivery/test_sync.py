"""What ``logs sync`` does (``delivery/sync.py``): deliver a spool, finish its run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.delivery.constants import (
    STATE_FILE,
    UNKNOWN_EXIT_CODE,
)
from crucible_train.adapters.delivery.spool import (
    spool_dir_for,
    spool_status,
    write_sink_info,
    write_state,
)
from crucible_train.adapters.delivery.sync import (
    SpoolingSink,
    SpoolResult,
    sync_run_dir,
    sync_spool,
)
from crucible_train.errors import HttpConnectionError, MissingSecretError

from delivery_fakes import MemoryTransport, http_error, submit_rows


def test_sync_spool_delivers_and_finishes_with_the_recorded_exit_code(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [http_error(HttpConnectionError, None, "refused")] * 1000
    sender = make_sender(down, spool)
    submit_rows(sender, 12)
    assert sender.close(2, 0.2) == 12
    up = MemoryTransport()
    assert sync_spool(spool, up, timeout=5) == 0
    assert sorted(up.delivered) == list(range(12))
    assert up.finished == [2]
    untouched = MemoryTransport()
    assert sync_spool(spool, untouched, timeout=5) == 0  # finished and empty: no requests
    assert untouched.calls["start"] == 0


def test_sync_spool_marks_a_run_whose_process_died_as_failed(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [http_error(HttpConnectionError, None, "refused")] * 1000
    sender = make_sender(down, spool)
    submit_rows(sender, 4)
    assert sender.wait_spooled(5)
    # Simulate a crash: the state on disk is what a dead process leaves (no exit code).
    state = json.loads((spool / STATE_FILE).read_text())
    sender.close(0, 0.2)
    (spool / STATE_FILE).write_text(json.dumps(state))
    assert spool_status(spool).exit_code is None
    up = MemoryTransport()
    assert sync_spool(spool, up, timeout=5) == 0
    assert up.finished == [UNKNOWN_EXIT_CODE] == [1]
    assert sorted(up.delivered) == [0, 1, 2, 3]


def test_a_sink_with_only_resume_transport_is_synced_through_the_transport_it_rebuilds(
    make_sender, tmp_path
):
    run = tmp_path / "run"
    spool = spool_dir_for(run, "old")
    down = MemoryTransport()
    down.plan["start"] = [http_error(HttpConnectionError, None, "refused")] * 1000
    sender = make_sender(down, spool)
    submit_rows(sender, 3)
    assert sender.close(5, 0.2) == 3
    write_sink_info(spool, "old", {})
    up = MemoryTransport()
    seen: dict[str, Any] = {}

    class OnlyResume:
        @classmethod
        def resume_transport(cls, spool_dir: Path, *, http: Any, environ: Any) -> MemoryTransport:
            seen.update(spool_dir=spool_dir, http=http, environ=environ)
            return up

    results = sync_run_dir(
        run, sinks={"old": OnlyResume}, http="client", timeout=5.0, environ={"K": "v"}
    )
    assert results == [SpoolResult(kind="old", spool_dir=spool, left=0)]
    assert seen == {"spool_dir": spool, "http": "client", "environ": {"K": "v"}}
    assert sorted(up.delivered) == [0, 1, 2]
    assert up.finished == [5]  # the exit code recorded by close()


def test_sync_run_dir_reports_what_it_cannot_sync_and_goes_on(make_sender, tmp_path):
    run = tmp_path / "run"
    write_sink_info(spool_dir_for(run, "console"), "console", {})
    write_sink_info(spool_dir_for(run, "keyed"), "keyed", {})
    write_sink_info(spool_dir_for(run, "mystery"), "mystery", {})
    calls: list[Path] = []

    class Keyed(SpoolingSink):
        SINK_KIND = "keyed"

        @classmethod
        def sync_spool(cls, spool_dir, **options):
            calls.append(spool_dir)
            raise MissingSecretError("export KEYED_TOKEN")

    class Fine(SpoolingSink):
        pass

    sinks = {"console": object, "keyed": Keyed, "fine": Fine}
    results = sync_run_dir(run, sinks=sinks, http=None, timeout=1.0, environ={})
    assert [(r.kind, r.left, r.error) for r in results] == [
        (
            "console",
            None,
            "no registered metrics sink 'console' can sync a spool (known: fine, keyed)",
        ),
        ("keyed", None, "export KEYED_TOKEN"),
        (
            "mystery",
            None,
            "no registered metrics sink 'mystery' can sync a spool (known: fine, keyed)",
        ),
    ]
    assert calls == [spool_dir_for(run, "keyed")]


def test_a_spool_with_nothing_to_do_needs_no_transport_and_no_secret(tmp_path):
    class NoSecret(SpoolingSink):
        SINK_KIND = "nosecret"

        @classmethod
        def resume_transport(cls, spool_dir, *, http, environ):
            raise MissingSecretError("export NOSECRET_KEY")

    spool = spool_dir_for(tmp_path, "nosecret")
    write_sink_info(spool, "nosecret", {})
    assert NoSecret.sync_spool(spool, http=None, environ={}, timeout=1.0) == 0
    write_state(
        spool, next_seq=0, acked=0, run={"id": "r"}, exit_code=0, finished=False, rejected=0
    )  # a run that was created but not finished: now it is needed
    with pytest.raises(MissingSecretError, match="NOSECRET_KEY"):
        NoSecret.sync_spool(spool, http=None, environ={}, timeout=1.0)
