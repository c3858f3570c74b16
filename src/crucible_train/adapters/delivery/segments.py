"""The rows on disk (adapter layer): append-only JSONL segments of spooled rows.

A spool keeps its rows in ``rows-<first seq>.jsonl`` files of up to
:data:`~crucible_train.adapters.delivery.constants.SEGMENT_ROWS` lines, one JSON object a
line that always starts ``{"seq":N,``. The spooler appends, the sender reads back in
``seq`` order and deletes segments once all their rows are acknowledged. A crash while
writing leaves at most a torn last line, which is cut when the spool is reopened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from crucible_train.adapters.delivery.constants import (
    SEGMENT_PREFIX,
    SEGMENT_ROWS,
    SEGMENT_SUFFIX,
)
from crucible_train.adapters.delivery.transport import SpooledRow

__all__ = ["SpoolFiles", "last_complete_seq", "segment_paths"]

_log = logging.getLogger(__name__)


def segment_paths(spool_dir: Path) -> list[tuple[int, Path]]:
    """The spool's segments as ``(first seq, path)``, oldest first."""
    found: list[tuple[int, Path]] = []
    if not spool_dir.is_dir():
        return found
    for path in spool_dir.iterdir():
        name = path.name
        if name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX):
            digits = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
            if digits.isdigit():
                found.append((int(digits), path))
    return sorted(found)


def _line_seq(line: bytes) -> int:
    """The ``seq`` of a spool line, which always starts ``{"seq":N,``."""
    return int(line[7 : line.index(b",")])


def last_complete_seq(path: Path, *, repair: bool) -> int | None:
    """The last complete row's seq in a segment; with ``repair``, cut a torn last line."""
    with open(path, "rb") as handle:
        data = handle.read()
    end = data.rfind(b"\n")
    if repair and end + 1 != len(data):
        # A crash mid-write left a partial line: that row was never durable; drop it.
        with open(path, "r+b") as handle:
            handle.truncate(end + 1)
    if end < 0:
        return None
    start = data.rfind(b"\n", 0, end) + 1
    try:
        return _line_seq(data[start:end])
    except ValueError:
        return None


class SpoolFiles:
    """Append-only segments of spooled rows, read back in ``seq`` order.

    The spooler thread appends, the sender thread reads and deletes acknowledged
    segments; one lock serialises them (appends hold it while writing whole lines, so a
    reader never sees half a row).

    Args:
        spool_dir: the spool directory (it exists).
        next_seq_hint: the counter recorded in ``state.json``; the segments win when
            they hold later rows.
    """

    def __init__(self, spool_dir: Path, *, next_seq_hint: int) -> None:
        self._dir = spool_dir
        self._lock = threading.Lock()
        next_seq = next_seq_hint
        segments = segment_paths(spool_dir)
        self._segments = [first for first, _path in segments]
        # The newest segment may end in a torn line (crash mid-write) or be empty (crash
        # right after it was created): repair it, and take the counter from the newest
        # segment that holds a complete row.
        for index, (_first, path) in enumerate(reversed(segments)):
            last = last_complete_seq(path, repair=index == 0)
            if last is not None:
                next_seq = max(next_seq, last + 1)
                break
        self.next_seq = next_seq
        self._closed = False
        self._writer: IO[bytes] | None = None
        self._writer_rows = SEGMENT_ROWS  # forces a fresh segment on the first append
        self._reader: IO[bytes] | None = None
        self._reader_segment = -1
        self._reader_next = -1

    def _path(self, first: int) -> Path:
        return self._dir / f"{SEGMENT_PREFIX}{first:012d}{SEGMENT_SUFFIX}"

    def append(self, lines: Sequence[bytes]) -> None:
        """Append complete lines (already numbered from ``next_seq``) and flush them."""
        with self._lock:
            if self._closed:
                raise OSError("the spool is closed")
            written = 0
            while written < len(lines):
                if self._writer is None or self._writer_rows >= SEGMENT_ROWS:
                    if self._writer is not None:
                        self._writer.close()
                    first = self.next_seq + written
                    self._writer = open(self._path(first), "ab")  # noqa: SIM115 - kept open
                    self._writer_rows = 0
                    if not self._segments or self._segments[-1] != first:
                        self._segments.append(first)
                room = SEGMENT_ROWS - self._writer_rows
                chunk = lines[written : written + room]
                self._writer.write(b"".join(chunk))
                self._writer_rows += len(chunk)
                written += len(chunk)
            if self._writer is not None:
                self._writer.flush()
            self.next_seq += len(lines)

    def read(self, from_seq: int, limit: int, end_seq: int) -> list[SpooledRow]:
        """Up to ``limit`` rows with ``from_seq <= seq < end_seq``, in order."""
        rows: list[SpooledRow] = []
        with self._lock:
            if self._closed:
                return rows
            if self._reader is None or self._reader_next != from_seq:
                self._seek(from_seq)
            while len(rows) < limit and self._reader_next < end_seq and self._reader:
                position = self._reader.tell()
                line = self._reader.readline()
                if not line.endswith(b"\n"):
                    self._reader.seek(position)
                    if not self._next_segment():
                        break
                    continue
                try:
                    record = json.loads(line)
                    row = SpooledRow(
                        seq=int(record["seq"]),
                        kind=str(record["kind"]),
                        payload=record["payload"],
                        time=float(record["time"]),
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    _log.error("skipping a damaged line in the spool %s: %s", self._dir, exc)
                    continue
                if row.seq < from_seq:
                    continue
                rows.append(row)
                self._reader_next = row.seq + 1
        return rows

    def _seek(self, seq: int) -> None:
        self._close_reader()
        candidates = [first for first in self._segments if first <= seq]
        if not candidates:
            if not self._segments:
                return
            candidates = [self._segments[0]]  # rows below the first segment are gone
        self._open_segment(candidates[-1])
        assert self._reader is not None
        while True:
            position = self._reader.tell()
            line = self._reader.readline()
            if not line.endswith(b"\n"):
                self._reader.seek(position)
                break
            try:
                if _line_seq(line) >= seq:
                    self._reader.seek(position)
                    break
            except ValueError:
                continue
        self._reader_next = seq

    def _open_segment(self, first: int) -> None:
        self._close_reader()
        try:
            self._reader = open(self._path(first), "rb")  # noqa: SIM115 - kept open
        except FileNotFoundError:
            self._reader = None
            return
        self._reader_segment = first

    def _next_segment(self) -> bool:
        later = [first for first in self._segments if first > self._reader_segment]
        if not later:
            return False
        self._open_segment(later[0])
        return self._reader is not None

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._reader_segment = -1

    def drop_acked(self, acked: int) -> None:
        """Delete segments whose rows are all below ``acked`` (never the newest one)."""
        with self._lock:
            while len(self._segments) >= 2 and self._segments[1] <= acked:
                first = self._segments.pop(0)
                if self._reader_segment == first:
                    self._close_reader()
                    self._reader_next = -1
                self._path(first).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the open files (a ``ResourceWarning`` otherwise)."""
        with self._lock:
            self._closed = True
            self._close_reader()
            if self._writer is not None:
                with contextlib.suppress(OSError):
                    self._writer.flush()
                    os.fsync(self._writer.fileno())
                self._writer.close()
                self._writer = None
