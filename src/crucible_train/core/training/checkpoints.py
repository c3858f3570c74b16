"""Checkpoint records and the resume bookkeeping of a run, kept in a run store.

A record is appended only after the state it names is completely saved and after the
metrics of every step before it are logged, so "the last record" is always a consistent
point to continue from: ``batch``/``epoch``/``step`` name the NEXT work to run. Where and
how records are stored is the :class:`~crucible_train.ports.run_store.RunStore`'s business
(``RUN_DIR/checkpoints.jsonl`` for the files adapter).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from crucible_train.ports.run_store import CheckpointRecord, RunStore
from crucible_train.ports.training import TrainingClient

__all__ = [
    "CheckpointLog",
    "CheckpointRecord",
    "record_saved_checkpoint",
    "save_closing_checkpoint",
]


class CheckpointLog:
    """The checkpoint records of a run: read, append, find the resume point.

    Args:
        store: the run's store (records are kept there).
    """

    def __init__(self, store: RunStore) -> None:
        self._store = store

    @property
    def store(self) -> RunStore:
        """The run store."""
        return self._store

    def records(self) -> list[CheckpointRecord]:
        """Every record, in order (none for a new run).

        Raises:
            InvalidDataError: a stored record cannot be read (names where it is).
        """
        return self._store.checkpoint_records()

    def append(self, record: CheckpointRecord) -> None:
        """Add ``record`` after the others (atomically)."""
        self._store.append_checkpoint_record(record)

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
