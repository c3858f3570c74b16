"""Noop vector store (adapter layer, no technology): stores nothing, answers nothing.

``upsert``, ``query`` and ``delete`` raise
:class:`~crucible_train.errors.BackendNotConfiguredError` naming ``vector_store.backend``
(an empty answer to a query would silently hide the missing configuration). ``len`` is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.vector_store import VectorMatch, VectorStore

__all__ = ["NoopVectorStore"]

_PORT = "vector_store"


class NoopVectorStore(VectorStore):
    """A vector store for configurations that never search vectors."""

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.NDArray[np.floating[Any]],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "upsert")

    def query(self, vector: npt.NDArray[np.floating[Any]], top_k: int = 10) -> list[VectorMatch]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "query")

    def delete(self, ids: Sequence[str]) -> None:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "delete")

    def __len__(self) -> int:
        """0: the store never holds vectors."""
        return 0
