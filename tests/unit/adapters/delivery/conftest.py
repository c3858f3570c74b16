"""Fixtures for the delivery tests: senders over a spool in ``tmp_path``, closed after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.spool import spool_dir_for
from crucible_train.adapters.delivery.transport import Transport


@pytest.fixture
def make_sender(tmp_path: Path) -> Iterator[Any]:
    """``make(transport, spool=None, **options)``: a fast sender, closed at teardown."""
    made: list[ReliableSender] = []

    def make(transport: Transport, spool: Path | None = None, **options: Any) -> ReliableSender:
        settings: dict[str, Any] = {
            "rate_per_s": 1000.0,
            "burst": 1000,
            "heartbeat_s": None,
            "min_backoff_s": 0.01,
            "max_backoff_s": 0.05,
        }
        settings.update(options)
        sender = ReliableSender(
            transport=transport,
            spool_dir=spool or spool_dir_for(tmp_path / "run", "memory"),
            **settings,
        )
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.close(0, 0.5)
