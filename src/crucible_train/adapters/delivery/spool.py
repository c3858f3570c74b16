"""The spool directory (adapter layer): where it lives, its small files, its lock.

``RUN_DIR/spool/<sink kind>/`` holds ``sink.json`` (written by the sink: its kind and the
run's identity, never a secret), ``state.json`` (sequence counter, acknowledged
watermark, the transport's run state, the exit code given to ``close``; replaced
atomically), the row segments (:mod:`crucible_train.adapters.delivery.segments`),
``rejected.jsonl`` and ``lock`` (an advisory lock: one sender per spool). This module
reads and writes all of them except the segments, and finds every spool of a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from crucible_train.adapters.delivery.constants import (
    LOCK_FILE,
    REJECTED_FILE,
    SINK_FILE,
    SPOOL_DIRNAME,
    STATE_FILE,
    STATE_FORMAT,
)
from crucible_train.adapters.delivery.encoding import json_safe, read_json, write_json_atomic
from crucible_train.adapters.delivery.segments import last_complete_seq, segment_paths
from crucible_train.errors import ConfigurationError, MetricsSinkError

__all__ = [
    "SpoolStatus",
    "find_spools",
    "load_state",
    "lock_spool",
    "read_sink_info",
    "reset_spool",
    "spool_dir_for",
    "spool_status",
    "unlock_spool",
    "write_sink_info",
    "write_state",
]


# --- where spools live, and what they belong to ---------------------------------------


def spool_dir_for(run_dir: str | os.PathLike[str], kind: str) -> Path:
    """The spool directory of sink ``kind`` under ``run_dir``: ``RUN_DIR/spool/<kind>``."""
    return Path(run_dir) / SPOOL_DIRNAME / kind


def write_sink_info(spool_dir: Path, kind: str, info: Mapping[str, Any]) -> None:
    """Record which sink owns ``spool_dir`` and the run's identity (no secrets).

    Args:
        spool_dir: the spool directory (created if missing).
        kind: the sink's backend name in ``containers.yaml`` (``"wandb"``, ``"neptune"``);
            ``logs sync`` finds the sink class by it.
        info: JSON-safe identity the sink's ``resume_transport`` needs.
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(spool_dir / SINK_FILE, {**json_safe(dict(info)), "kind": kind})


def read_sink_info(spool_dir: Path) -> dict[str, Any]:
    """The ``sink.json`` of ``spool_dir``.

    Raises:
        ConfigurationError: the file is missing or is not a JSON object with a ``kind``.
    """
    path = spool_dir / SINK_FILE
    try:
        info = read_json(path)
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path} does not exist; {spool_dir} is not a sink spool"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} cannot be read: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("kind"), str):
        raise ConfigurationError(f"{path} does not name its sink kind")
    return info


def find_spools(run_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """Every sink spool under ``run_dir``, as ``(kind, spool_dir)`` sorted by directory.

    A spool is a directory ``RUN_DIR/spool/*/`` holding a ``sink.json``; other
    directories there are ignored.

    Raises:
        ConfigurationError: a ``sink.json`` is unreadable or names no sink kind.
    """
    root = Path(run_dir) / SPOOL_DIRNAME
    if not root.is_dir():
        return []
    return [
        (read_sink_info(child)["kind"], child)
        for child in sorted(root.iterdir())
        if (child / SINK_FILE).is_file()
    ]


# --- state.json -----------------------------------------------------------------------


def load_state(spool_dir: Path) -> dict[str, Any]:
    """The spool's ``state.json`` (``{}`` when there is none yet).

    Raises:
        MetricsSinkError: the file exists but cannot be read.
    """
    path = spool_dir / STATE_FILE
    try:
        state = read_json(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MetricsSinkError(f"{path} cannot be read ({exc}); the spool is damaged") from None
    return state if isinstance(state, dict) else {}


def write_state(
    spool_dir: Path,
    *,
    next_seq: int,
    acked: int,
    run: Mapping[str, Any],
    exit_code: int | None,
    finished: bool,
    rejected: int,
) -> None:
    """Replace the spool's ``state.json`` atomically (``OSError`` when the disk refuses).

    Args:
        spool_dir: the spool directory.
        next_seq: the sequence number the next row gets.
        acked: rows below this seq are acknowledged.
        run: the transport's run state (JSON-safe, no secret).
        exit_code: the exit code given to ``close`` (``None`` before).
        finished: the run was marked finished after the last row.
        rejected: rows the service refused so far.
    """
    state = {
        "format": STATE_FORMAT,
        "next_seq": next_seq,
        "acked": acked,
        "run": run,
        "exit_code": exit_code,
        "finished": finished,
        "rejected": rejected,
    }
    write_json_atomic(spool_dir / STATE_FILE, state)


@attrs.frozen(kw_only=True)
class SpoolStatus:
    """What a spool holds, read from disk without starting anything.

    Attributes:
        pending: rows spooled but not acknowledged.
        next_seq: the sequence number the next row would get.
        exit_code: the exit code given to ``close`` (``None``: close was never called).
        finished: the run was marked finished and nothing was spooled since.
        started: the remote run was created at least once (the run state is not empty).
    """

    pending: int
    next_seq: int
    exit_code: int | None
    finished: bool
    started: bool


def spool_status(spool_dir: Path) -> SpoolStatus:
    """What ``spool_dir`` holds, read from disk (nothing is started or locked).

    Raises:
        MetricsSinkError: ``state.json`` is unreadable.
    """
    state = load_state(spool_dir)
    acked = int(state.get("acked", 0))
    next_seq = max(int(state.get("next_seq", 0)), acked)
    for _first, path in reversed(segment_paths(spool_dir)):
        last = last_complete_seq(path, repair=False)
        if last is not None:
            next_seq = max(next_seq, last + 1)
            break
    exit_code = state.get("exit_code")
    return SpoolStatus(
        pending=next_seq - acked,
        next_seq=next_seq,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        finished=bool(state.get("finished", False)),
        started=bool(state.get("run")),
    )


def reset_spool(spool_dir: Path) -> None:
    """Delete a spool's state, segments and rejected rows (``sink.json`` is kept).

    Only for a spool whose rows were all delivered, before it is reused for another run.

    Raises:
        MetricsSinkError: rows are still pending (they would be lost).
    """
    if spool_status(spool_dir).pending:
        raise MetricsSinkError(f"{spool_dir} still holds undelivered rows; not resetting it")
    for _first, path in segment_paths(spool_dir):
        path.unlink(missing_ok=True)
    for name in (STATE_FILE, REJECTED_FILE):
        (spool_dir / name).unlink(missing_ok=True)


# --- the lock -------------------------------------------------------------------------


def lock_spool(spool_dir: Path) -> int | None:
    """Take the spool's advisory lock (``None`` where ``fcntl`` does not exist).

    Raises:
        ConfigurationError: another sender holds the lock.
    """
    try:
        import fcntl  # POSIX only; elsewhere two senders on one spool are not detected
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(spool_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigurationError(
            f"the spool {spool_dir} is in use by another sender (a running training process "
            "or `crucible-train logs sync`); give each run its own run_dir, or wait for it "
            "to finish"
        ) from None
    return fd


def unlock_spool(fd: int | None) -> None:
    """Release a lock taken by :func:`lock_spool`."""
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
