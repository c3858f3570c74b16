"""Delivery constants (adapter layer): the spool's file names, sizes, limits and timings.

Every number and name the delivery modules share is written here once; a module that
needs one imports it from here.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATEXIT_SPOOL_WAIT_S",
    "DEFAULT_MAX_BACKOFF_S",
    "DEFAULT_MAX_ROWS_PER_REQUEST",
    "DEFAULT_MIN_BACKOFF_S",
    "DRAIN_MAX",
    "LOCK_FILE",
    "MAX_RETRY_AFTER_S",
    "REJECTED_FILE",
    "SEGMENT_PREFIX",
    "SEGMENT_ROWS",
    "SEGMENT_SUFFIX",
    "SINK_FILE",
    "SPOOL_DIRNAME",
    "SPOOL_GRACE_S",
    "STATE_FILE",
    "STATE_FORMAT",
    "STOP_STATUSES",
    "SYNC_BURST",
    "SYNC_MAX_BACKOFF_S",
    "SYNC_RATE_PER_S",
    "UNKNOWN_EXIT_CODE",
]

# --- the spool's layout on disk -------------------------------------------------------

SPOOL_DIRNAME: Final = "spool"
"""``RUN_DIR/spool/<sink kind>/`` holds one sink's spool."""
SINK_FILE: Final = "sink.json"
"""Written by the sink: ``{"kind": ..., ...identity}``; what ``logs sync`` rebuilds from."""
STATE_FILE: Final = "state.json"
"""Sequence counter, acknowledged watermark, run state and exit code (atomic writes)."""
STATE_FORMAT: Final = 1
"""The ``format`` written into ``state.json``."""
REJECTED_FILE: Final = "rejected.jsonl"
"""Rows the service refused permanently, each with the server's message."""
LOCK_FILE: Final = "lock"
"""Advisory lock held by the one sender using the spool."""
SEGMENT_PREFIX: Final = "rows-"
"""Segments are named ``rows-<first seq, 12 digits>.jsonl``."""
SEGMENT_SUFFIX: Final = ".jsonl"
"""See :data:`SEGMENT_PREFIX`."""
SEGMENT_ROWS: Final = 10_000
"""Rows per spool segment; fully acknowledged segments are deleted."""

# --- the sender -----------------------------------------------------------------------

DRAIN_MAX: Final = 10_000
"""Rows the spooler takes from the queue per write."""
STOP_STATUSES: Final = frozenset({401, 403, 404, 501})
"""HTTP statuses of a refused ``send`` that stop delivery: retrying them fails forever."""
MAX_RETRY_AFTER_S: Final = 3600.0
"""A ``Retry-After`` longer than this (seconds) is capped: a guard against absurd values."""
ATEXIT_SPOOL_WAIT_S: Final = 5.0
"""Seconds the spooler gets at interpreter exit to put queued rows on disk."""
SPOOL_GRACE_S: Final = 2.0
"""``close`` waits at least this long (seconds) for the spooler, whatever its timeout."""
DEFAULT_MAX_ROWS_PER_REQUEST: Final = 1000
"""Rows per ``Transport.send`` call at most, unless the sink says otherwise."""
DEFAULT_MIN_BACKOFF_S: Final = 1.0
"""First retry delay (seconds, before jitter), unless the sink says otherwise."""
DEFAULT_MAX_BACKOFF_S: Final = 60.0
"""Longest retry delay (seconds) of a live sender, unless the sink says otherwise."""

# --- logs sync ------------------------------------------------------------------------

UNKNOWN_EXIT_CODE: Final = 1
"""Exit code ``logs sync`` reports when the process died before ``close``.

A run that never reached ``close`` did not finish successfully, so it is marked failed
(a definite state in every service) rather than left to the service's crash detection;
resuming the run later reopens it. ``crucible-train logs sync --exit-code`` overrides it.
"""
SYNC_RATE_PER_S: Final = 1.0
"""Sustained requests per second while ``logs sync`` delivers a spool."""
SYNC_BURST: Final = 4
"""Requests ``logs sync`` may send back to back."""
SYNC_MAX_BACKOFF_S: Final = 30.0
"""Longest retry delay (seconds) while ``logs sync`` delivers a spool."""
