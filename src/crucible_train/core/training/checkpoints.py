"""Checkpoint records (``checkpoints.jsonl``) and the resume bookkeeping of a run directory.

A record is appended only after the state it names is completely saved and after the
metrics of every step before it are logged, so "the last record" is always a consistent
point to continue from: ``batch``/``epoch``/``step`` name the NEXT work to run (the anchor's
off-by-one, a record naming the batch it was saved after, is deliberately not copied).
The file is rewritten atomically (temporary file, fsync, rename), so a reader never sees a
torn line even when the process is killed mid-write.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs

from crucible_train.errors import InvalidDataError
from crucible_train.ports.training import TrainingClient

__all__ = [
    "CHECKPOINTS_FILE",
    "METRICS_FILE",
    "CheckpointLog",
    "CheckpointRecord",
    "atomic_write_text",
    "record_saved_checkpoint",
    "save_closing_checkpoint",
    "truncate_metrics",
]

CHECKPOINTS_FILE = "checkpoints.jsonl"
METRICS_FILE = "metrics.jsonl"


@attrs.frozen(kw_only=True)
class CheckpointRecord:
    """One saved checkpoint.

    Attributes:
        name: checkpoint name (``000020``, ``final``, ``interrupted``).
        step: the next optimiser step to run (0-based); also the count of steps done.
        epoch: the epoch of the next batch to run.
        batch: the index, within ``epoch``, of the next batch to run.
        state_path: full training state (weights, optimiser, RNG) for ``--resume``.
        sampler_path: weights a SamplingClient can load (teacher, RL start), if saved.
        final: the run finished after this checkpoint.
        extra: loop-specific state (e.g. ``elapsed_tokens``).
    """

    name: str
    step: int
    epoch: int = 0
    batch: int = 0
    state_path: str | None = None
    sampler_path: str | None = None
    final: bool = False
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: known fields first, ``None`` fields left out, extra keys merged in."""
        out: dict[str, Any] = {"name": self.name, "step": self.step, "epoch": self.epoch}
        out["batch"] = self.batch
        if self.state_path is not None:
            out["state_path"] = self.state_path
        if self.sampler_path is not None:
            out["sampler_path"] = self.sampler_path
        if self.final:
            out["final"] = True
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "record") -> CheckpointRecord:
        """Parse a record; unknown keys go to ``extra``.

        Raises:
            InvalidDataError: ``name`` or ``step`` missing or of the wrong type.
        """
        known = {"name", "step", "epoch", "batch", "state_path", "sampler_path", "final"}
        if not isinstance(data.get("name"), str) or not isinstance(data.get("step"), int):
            raise InvalidDataError(f"{where}: a checkpoint record needs 'name' and 'step'")
        return cls(
            name=data["name"],
            step=int(data["step"]),
            epoch=int(data.get("epoch", 0)),
            batch=int(data.get("batch", 0)),
            state_path=data.get("state_path"),
            sampler_path=data.get("sampler_path"),
            final=bool(data.get("final", False)),
            extra={k: v for k, v in data.items() if k not in known},
        )


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckpointLog:
    """``RUN_DIR/checkpoints.jsonl``: read, append (atomically), find the resume point.

    Args:
        run_dir: the run directory.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self._path = Path(run_dir) / CHECKPOINTS_FILE

    @property
    def path(self) -> Path:
        """The file."""
        return self._path

    def records(self) -> list[CheckpointRecord]:
        """Every record, in order (none when the file does not exist).

        Raises:
            InvalidDataError: a line is not a JSON record (names the file and line).
        """
        if not self._path.exists():
            return []
        out: list[CheckpointRecord] = []
        for number, line in enumerate(self._path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{self._path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidDataError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(data, dict):
                raise InvalidDataError(f"{where}: expected a JSON object")
            out.append(CheckpointRecord.from_dict(data, where))
        return out

    def append(self, record: CheckpointRecord) -> None:
        """Add ``record`` (the whole file is rewritten atomically)."""
        lines = [json.dumps(r.to_dict()) for r in self.records()]
        lines.append(json.dumps(record.to_dict()))
        atomic_write_text(self._path, "\n".join(lines) + "\n")

    def last_resumable(self) -> CheckpointRecord | None:
        """The last record with a ``state_path``, or ``None``."""
        for record in reversed(self.records()):
            if record.state_path is not None:
                return record
        return None

    def last_with_sampler(self) -> CheckpointRecord | None:
        """The last record with a ``sampler_path`` (a starting point for later stages)."""
        for record in reversed(self.records()):
            if record.sampler_path is not None:
                return record
        return None


def truncate_metrics(run_dir: str | os.PathLike[str], first_step: int) -> int:
    """Drop ``metrics.jsonl`` rows of steps ``>= first_step`` (and a torn last line).

    Resuming re-runs those steps and logs them again, so the file ends up exactly as an
    uninterrupted run's. Rows without a step are kept. Loops log in step order, so the
    dropped rows are normally a suffix: the file is then cut in place (one ``truncate``
    call, so a metrics sink that already holds the file open in append mode keeps writing
    to it). Otherwise the kept rows are rewritten atomically. Returns the rows dropped.
    """
    path = Path(run_dir) / METRICS_FILE
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
        atomic_write_text(path, b"".join(kept).decode("utf-8"))
    return dropped


def save_closing_checkpoint(
    training: TrainingClient,
    log: CheckpointLog,
    *,
    interrupted: bool,
    step: int,
    epoch: int,
    batch: int,
    extra: Mapping[str, Any] | None = None,
) -> CheckpointRecord:
    """Save and record the checkpoint a loop ends with, and return its record.

    Interrupted (Ctrl-C): the state only, named ``interrupted-NNNNNN``, so ``--resume``
    continues at ``step``/``epoch``/``batch``. Finished: state and sampler weights named
    ``final``, marked ``final``. The record is appended after the saves complete.
    """
    if interrupted:
        name = f"interrupted-{step:06d}"
        record = CheckpointRecord(
            name=name,
            step=step,
            epoch=epoch,
            batch=batch,
            state_path=training.save_state(name).result(),
            extra=dict(extra or {}),
        )
    else:
        state = training.save_state("final")
        sampler = training.save_weights_for_sampler("final")
        record = CheckpointRecord(
            name="final",
            step=step,
            epoch=epoch,
            batch=batch,
            state_path=state.result(),
            sampler_path=sampler.result(),
            final=True,
            extra=dict(extra or {}),
        )
    log.append(record)
    return record


def record_saved_checkpoint(
    log: CheckpointLog,
    *,
    name: str,
    state: Future[str],
    sampler: Future[str] | None,
    step: int,
    epoch: int,
    batch: int,
    extra: Mapping[str, Any] | None = None,
) -> CheckpointRecord:
    """Wait for a periodic save, then append its record (naming the next step to run).

    Callers invoke this only after the metrics of every earlier step are logged, so the
    record is a consistent point to resume from.
    """
    record = CheckpointRecord(
        name=name,
        step=step,
        epoch=epoch,
        batch=batch,
        state_path=state.result(),
        sampler_path=sampler.result() if sampler is not None else None,
        extra=dict(extra or {}),
    )
    log.append(record)
    return record
