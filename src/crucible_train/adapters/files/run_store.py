"""Run store over a run directory of plain files (adapter layer, ``os``, ``json``, numpy).

Layout of ``run_dir`` (created on the first write):

* ``checkpoints.jsonl``: one JSON object per checkpoint record
  (:meth:`~crucible_train.ports.run_store.CheckpointRecord.to_dict`), one per line. An
  append rewrites the whole file atomically (temporary file, fsync, rename), so a reader
  never sees a torn line even when the process is killed mid-write.
* ``metrics.jsonl``: written by the files metrics sink; :meth:`FilesRunStore.rewind_metrics`
  only removes rows from it.
* ``<name>.npz``: the arrays saved under ``name`` (``numpy.savez``, no pickling), replaced
  atomically.

These are the files (and formats) of crucible-train 0.2, so its run directories resume.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crucible_train.adapters.files.metrics_sink import METRICS_FILE, _write_atomic
from crucible_train.errors import InvalidDataError
from crucible_train.ports.run_store import CheckpointRecord, RunStore

__all__ = ["CHECKPOINTS_FILE", "FilesRunStore"]

CHECKPOINTS_FILE = "checkpoints.jsonl"
ARRAYS_SUFFIX = ".npz"


class FilesRunStore(RunStore):
    """The records, metric rewind and arrays of the run in ``run_dir``.

    Args:
        run_dir: the run directory (need not exist yet).
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self._dir = Path(run_dir)

    def __repr__(self) -> str:
        return f"FilesRunStore({str(self._dir)!r})"

    @property
    def location(self) -> str:
        """The run directory."""
        return str(self._dir)

    @property
    def checkpoints_path(self) -> Path:
        """``<run_dir>/checkpoints.jsonl``."""
        return self._dir / CHECKPOINTS_FILE

    def arrays_path(self, name: str) -> Path:
        """``<run_dir>/<name>.npz``."""
        return self._dir / f"{name}{ARRAYS_SUFFIX}"

    def arrays_location(self, name: str) -> str:
        """The ``.npz`` file of ``name``."""
        return str(self.arrays_path(name))

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(str(path), data)

    def checkpoint_records(self) -> list[CheckpointRecord]:
        """Every record of ``checkpoints.jsonl`` (none when the file does not exist).

        Raises:
            InvalidDataError: a line is not a JSON record (names the file and line).
        """
        path = self.checkpoints_path
        if not path.exists():
            return []
        out: list[CheckpointRecord] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidDataError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(data, dict):
                raise InvalidDataError(f"{where}: expected a JSON object")
            out.append(CheckpointRecord.from_dict(data, where))
        return out

    def append_checkpoint_record(self, record: CheckpointRecord) -> None:
        """Add ``record`` (the whole file is rewritten atomically)."""
        lines = [json.dumps(r.to_dict()) for r in self.checkpoint_records()]
        lines.append(json.dumps(record.to_dict()))
        self._write(self.checkpoints_path, ("\n".join(lines) + "\n").encode("utf-8"))

    def rewind_metrics(self, first_step: int) -> int:
        """Drop ``metrics.jsonl`` rows of steps ``>= first_step`` (and a torn last line).

        Loops log in step order, so the dropped rows are normally a suffix: the file is
        then cut in place (one ``truncate`` call, so a metrics sink that already holds the
        file open in append mode keeps writing to it). Otherwise the kept rows are
        rewritten atomically.
        """
        path = self._dir / METRICS_FILE
        if not path.exists():
            return 0
        raw = path.read_bytes()
        kept: list[bytes] = []
        dropped = 0
        cut: int | None = None  # byte offset of the first dropped line
        suffix = True  # every dropped line comes after every kept line
        offset = 0
        for line in raw.splitlines(keepends=True):
            start, offset = offset, offset + len(line)
            try:
                row = json.loads(line)
                torn = not line.endswith(b"\n")
            except (json.JSONDecodeError, UnicodeDecodeError):
                row, torn = None, True  # a line torn by a kill
            step = row.get("step") if isinstance(row, dict) else None
            if torn or (isinstance(step, int) and step >= first_step):
                dropped += 1
                cut = start if cut is None else cut
                continue
            if cut is not None:
                suffix = False
            kept.append(line)
        if not dropped:
            return 0
        if suffix and cut is not None:
            os.truncate(path, cut)
        else:
            self._write(path, b"".join(kept))
        return dropped

    def save_arrays(self, name: str, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
        """Write ``<name>.npz`` atomically (temporary file, fsync, rename)."""
        buffer = io.BytesIO()
        # Typed loosely: numpy's stubs read every keyword as its own ``allow_pickle``.
        named: dict[str, Any] = dict(arrays)
        np.savez(buffer, **named)
        self._write(self.arrays_path(name), buffer.getvalue())

    def load_arrays(self, name: str) -> dict[str, np.ndarray[Any, Any]] | None:
        """Read ``<name>.npz``; ``None`` when it does not exist.

        Raises:
            InvalidDataError: the file is not a readable ``.npz`` of plain arrays.
        """
        path = self.arrays_path(name)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: np.asarray(data[key]) for key in data.files}
        except (OSError, ValueError) as exc:
            raise InvalidDataError(f"{path}: not a readable array file ({exc})") from None
