"""Delivery option checks (``delivery/options.py``): every problem reported at once."""

from __future__ import annotations

import pytest
from delivery_fakes import MemoryTransport

from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.errors import ConfigurationError


def test_options_are_validated(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        ReliableSender(
            transport=MemoryTransport(),
            spool_dir=tmp_path,
            rate_per_s=0,
            burst=0,
            heartbeat_s=-1,
            max_rows_per_request=0,
        )
    assert len(info.value.problems) == 4
