"""The spool directory (``delivery/spool.py``): sink.json, discovery, the lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_fakes import MemoryTransport

from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.spool import (
    find_spools,
    read_sink_info,
    spool_dir_for,
    write_sink_info,
)
from crucible_train.errors import ConfigurationError


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
