"""The spooler thread (``delivery/spooler.py``): what it stores, and what it cannot."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from delivery_fakes import MemoryTransport, submit_rows


def test_a_row_that_cannot_be_stored_is_reported_and_does_not_block_flush(make_sender, caplog):
    transport = MemoryTransport()
    sender = make_sender(transport)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with caplog.at_level(logging.ERROR):
        sender.submit("metrics", loop)
        submit_rows(sender, 2)
        assert sender.flush(5) == 0
    assert "cannot be stored" in caplog.text
    assert sorted(transport.delivered) == [0, 1]


def test_numpy_scalars_are_spooled_as_plain_numbers(make_sender):
    transport = MemoryTransport()
    sender = make_sender(transport)
    sender.submit("metrics", {"x": np.float32(0.5), "n": np.int64(3), "b": np.bool_(True)})
    sender.close(0, 5)
    assert transport.delivered[0].payload == {"x": 0.5, "n": 3, "b": True}
