"""Noop dataset store (adapter layer, no technology): has no datasets to open.

``iter_records`` raises :class:`~crucible_train.errors.BackendNotConfiguredError` naming
``dataset_store.backend`` when called, not when first iterated, so the failing line is the
one that asked for the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.dataset_store import DatasetRecord, DatasetStore

__all__ = ["NoopDatasetStore"]


class NoopDatasetStore(DatasetStore):
    """A dataset store for configurations that never read a dataset."""

    def iter_records(self, source: str) -> Iterator[DatasetRecord]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured("dataset_store", "iter_records")
