"""Reliable delivery for network metrics sinks (adapter layer, no technology).

"Never block, never lose": the W&B and Neptune sinks hand rows to a
:class:`ReliableSender`, which spools them on disk and delivers them in order, exactly
once, from background threads; ``crucible-train logs sync RUN_DIR`` delivers what a
process left behind (:func:`sync_run_dir`). One module per responsibility; see
``README.md`` beside this file for the map and the guarantees.
"""

from __future__ import annotations

from crucible_train.adapters.delivery.backoff import backoff_delay
from crucible_train.adapters.delivery.encoding import json_safe
from crucible_train.adapters.delivery.rate_limit import TokenBucket
from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.spool import (
    SpoolStatus,
    find_spools,
    read_sink_info,
    reset_spool,
    spool_dir_for,
    spool_status,
    write_sink_info,
)
from crucible_train.adapters.delivery.sync import (
    ResumableSink,
    SpoolingSink,
    SpoolResult,
    sync_run_dir,
    sync_spool,
)
from crucible_train.adapters.delivery.transport import SpooledRow, Transport

__all__ = [
    "ReliableSender",
    "ResumableSink",
    "SpoolResult",
    "SpoolStatus",
    "SpooledRow",
    "SpoolingSink",
    "TokenBucket",
    "Transport",
    "backoff_delay",
    "find_spools",
    "json_safe",
    "read_sink_info",
    "reset_spool",
    "spool_dir_for",
    "spool_status",
    "sync_run_dir",
    "sync_spool",
    "write_sink_info",
]
