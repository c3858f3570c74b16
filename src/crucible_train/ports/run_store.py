"""Port: what a training loop keeps in its run directory besides the metrics sinks' files.

Three things, each read back when a run resumes:

* **checkpoint records**: one :class:`CheckpointRecord` per saved checkpoint, in order. A
  record is appended only after the state it names is completely saved, so the last one is
  always a consistent point to continue from;
* **the metric rewind**: a resumed run re-runs the steps after its last record and logs
  them again, so it first drops the rows those steps logged before (the metrics themselves
  are written by a :class:`~crucible_train.ports.metrics.MetricsSink`);
* **named arrays**: small sets of numpy arrays computed once per run (DPO's reference
  log-probabilities), stored under a name and reloaded instead of recomputed.

A new adapter must guarantee: ``append_checkpoint_record`` and ``save_arrays`` are atomic
(a reader, even after a crash mid-write, sees the records or arrays from before the call or
from after it, never a mix); records come back equal to what was appended, in order, and
arrays with the same dtype, shape and values; ``rewind_metrics`` leaves exactly the rows an
uninterrupted run would have logged before ``first_step``; a store that holds nothing yet
is empty, not an error. Calls come from the loop's thread; a store serves one run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.errors import InvalidDataError

__all__ = ["CheckpointRecord", "RunStore"]

_KNOWN_KEYS = frozenset({"name", "step", "epoch", "batch", "state_path", "sampler_path", "final"})


@attrs.frozen(kw_only=True)
class CheckpointRecord:
    """One saved checkpoint.

    ``batch``/``epoch``/``step`` name the NEXT work to run (the anchor's off-by-one, a
    record naming the batch it was saved after, is deliberately not copied).

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
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )


@runtime_checkable
class RunStore(Protocol):
    """The records, metric rewind and arrays of one run. Not thread-safe (one loop)."""

    @property
    def location(self) -> str:
        """Where the run lives, as shown in messages (the run directory for files)."""
        ...

    def arrays_location(self, name: str) -> str:
        """Where the arrays saved under ``name`` live, as shown in messages."""
        ...

    def checkpoint_records(self) -> list[CheckpointRecord]:
        """Every record appended so far, in order (none for a new run).

        Raises:
            InvalidDataError: a stored record cannot be read (names where it is).
        """
        ...

    def append_checkpoint_record(self, record: CheckpointRecord) -> None:
        """Add ``record`` after the others, atomically. Not idempotent: twice is two records.

        Raises:
            InvalidDataError: an earlier stored record cannot be read.
        """
        ...

    def rewind_metrics(self, first_step: int) -> int:
        """Drop the metric rows of steps ``>= first_step`` (and a row torn by a crash).

        Rows without a step are kept. Returns how many rows were dropped; a run with no
        metrics yet drops none. Safe to repeat.
        """
        ...

    def save_arrays(self, name: str, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
        """Store ``arrays`` (array name → numpy array) under ``name``, replacing what was
        there, atomically. Arrays must not need pickling (no ``object`` dtype)."""
        ...

    def load_arrays(self, name: str) -> dict[str, np.ndarray[Any, Any]] | None:
        """The arrays saved under ``name`` (in the order saved), or ``None`` if none were.

        Raises:
            InvalidDataError: something is stored under ``name`` but cannot be read.
        """
        ...
