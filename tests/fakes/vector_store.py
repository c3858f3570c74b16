"""FakeVectorStore: the in-memory numpy store, recording every call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from crucible_train.adapters.memory.vector_store import NumpyVectorStore
from crucible_train.ports.vector_store import VectorMatch


class FakeVectorStore(NumpyVectorStore):
    """The ``memory`` adapter (exact cosine search) plus a record of the calls:
    :attr:`upserts` (ids per call), :attr:`queries` (``(vector, top_k)``) and
    :attr:`deletes` (ids per call)."""

    def __init__(self, *, dimension: int | None = None) -> None:
        super().__init__(dimension=dimension)
        self.upserts: list[list[str]] = []
        self.queries: list[tuple[npt.NDArray[Any], int]] = []
        self.deletes: list[list[str]] = []

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.NDArray[np.floating[Any]],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Recorded, then the numpy store's upsert."""
        self.upserts.append(list(ids))
        super().upsert(ids, vectors, metadata)

    def query(self, vector: npt.NDArray[np.floating[Any]], top_k: int = 10) -> list[VectorMatch]:
        """Recorded, then the numpy store's query."""
        self.queries.append((np.array(vector, copy=True), top_k))
        return super().query(vector, top_k)

    def delete(self, ids: Sequence[str]) -> None:
        """Recorded, then the numpy store's delete."""
        self.deletes.append(list(ids))
        super().delete(ids)
