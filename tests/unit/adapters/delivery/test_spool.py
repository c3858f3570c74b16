"""The spool directory (``delivery/spool.py``): sink.json, discovery, the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.spool import (
    find_spools,
    load_state,
    read_sink_info,
    spool_dir_for,
    spool_status,
    write_sink_info,
    write_state,
)
from crucible_train.errors import ConfigurationError

from delivery_fakes import MemoryTransport


def test_sink_info_and_discovery(tmp_path):
    run = tmp_path / "run"
    write_sink_info(spool_dir_for(run, "wandb"), "wandb", {"run_id": "abc", "path": Path("/x")})
    write_sink_info(spool_dir_for(run, "neptune"), "neptune", {"custom_id": "c"})
    (run / "spool" / "junk").mkdir()
    assert read_sink_info(run / "spool" / "wandb") == {
        "run_id": "abc",
        "path": "/x",
        "kind": "wandb",
    }
    expected = [("neptune", run / "spool" / "neptune"), ("wandb", run / "spool" / "wandb")]
    assert find_spools(run) == expected
    assert find_spools(tmp_path / "nothing") == []
    with pytest.raises(ConfigurationError, match="not a sink spool"):
        read_sink_info(run / "spool" / "junk")


def test_only_one_sender_per_spool(make_sender, tmp_path):
    spool = tmp_path / "spool" / "x"
    first = make_sender(MemoryTransport(), spool)
    with pytest.raises(ConfigurationError, match="in use"):
        ReliableSender(
            transport=MemoryTransport(), spool_dir=spool, rate_per_s=1, burst=1, heartbeat_s=None
        )
    first.close(0, 1)
    make_sender(MemoryTransport(), spool)  # free again


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "cannot be read"), ('["wandb"]', "does not name its sink kind")],
)
def test_find_spools_refuses_a_sink_file_it_cannot_use(tmp_path, content, message):
    spool = spool_dir_for(tmp_path / "run", "x")
    spool.mkdir(parents=True)
    (spool / "sink.json").write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        find_spools(tmp_path / "run")


def test_write_state_replaces_the_state_file_atomically(tmp_path):
    write_state(
        tmp_path, next_seq=7, acked=5, run={"id": "r"}, exit_code=None, finished=False, rejected=1
    )
    assert load_state(tmp_path) == {
        "format": 1,
        "next_seq": 7,
        "acked": 5,
        "run": {"id": "r"},
        "exit_code": None,
        "finished": False,
        "rejected": 1,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left
    status = spool_status(tmp_path)
    assert (status.pending, status.next_seq, status.started) == (2, 7, True)
