"""FakeRunStore: records, arrays and every metric rewind in memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from crucible_train.ports.run_store import CheckpointRecord, RunStore

from fakes.metrics import FakeMetricsSink


class FakeRunStore(RunStore):
    """A run store in memory: :attr:`records`, :attr:`arrays` and :attr:`rewinds`.

    Args:
        metrics: the sink whose rows the metric rewind drops, as the files store drops the
            rows the files sink wrote (:attr:`metrics`; a new one when not given).
        location: what messages name as the run's place.
        events: an event log shared with other fakes: each append adds
            ``record:<name>``, each rewind ``rewind:<first step>``.
    """

    def __init__(
        self,
        *,
        metrics: FakeMetricsSink | None = None,
        location: str = "memory://run",
        events: list[str] | None = None,
    ) -> None:
        self.records: list[CheckpointRecord] = []
        self.arrays: dict[str, dict[str, npt.NDArray[Any]]] = {}
        self.rewinds: list[int] = []
        self.metrics = metrics if metrics is not None else FakeMetricsSink()
        self.events = events
        self._location = location

    @property
    def location(self) -> str:
        """The ``location`` given."""
        return self._location

    def arrays_location(self, name: str) -> str:
        """``<location>/<name>``."""
        return f"{self._location}/{name}"

    def checkpoint_records(self) -> list[CheckpointRecord]:
        """A copy of :attr:`records`."""
        return list(self.records)

    def append_checkpoint_record(self, record: CheckpointRecord) -> None:
        """Appends to :attr:`records`."""
        if self.events is not None:
            self.events.append(f"record:{record.name}")
        self.records.append(record)

    def rewind_metrics(self, first_step: int) -> int:
        """Drops the sink's rows of steps ``>= first_step``; keeps rows without a step."""
        if self.events is not None:
            self.events.append(f"rewind:{first_step}")
        self.rewinds.append(first_step)
        rows = self.metrics.rows
        kept = [row for row in rows if row[0] is None or row[0] < first_step]
        dropped = len(rows) - len(kept)
        rows[:] = kept
        return dropped

    def save_arrays(self, name: str, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
        """Keeps copies of ``arrays`` under ``name``."""
        self.arrays[name] = {key: np.array(value, copy=True) for key, value in arrays.items()}

    def load_arrays(self, name: str) -> dict[str, np.ndarray[Any, Any]] | None:
        """Copies of the arrays under ``name``, or ``None``."""
        stored = self.arrays.get(name)
        if stored is None:
            return None
        return {key: np.array(value, copy=True) for key, value in stored.items()}
