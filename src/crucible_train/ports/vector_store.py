"""Port: a store of vectors searchable by cosine similarity.

A new adapter must guarantee: all vectors of one store share one width (a mismatch raises
:class:`~crucible_train.errors.VectorStoreError`); ``upsert`` of an existing id replaces
it; ``query`` returns at most ``top_k`` matches, best first, ties broken by id; zero
vectors have similarity 0 with everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["VectorMatch", "VectorStore"]


@attrs.frozen(kw_only=True)
class VectorMatch:
    """One query result: the stored id, its cosine similarity in [-1, 1] and its metadata."""

    id: str
    score: float
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class VectorStore(Protocol):
    """Holds vectors by id and answers nearest-neighbour queries."""

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.NDArray[np.floating[Any]],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Insert or replace ``vectors`` (shape ``(len(ids), D)``) under ``ids``."""
        ...

    def query(self, vector: npt.NDArray[np.floating[Any]], top_k: int = 10) -> list[VectorMatch]:
        """The ``top_k`` stored vectors most cosine-similar to ``vector`` (shape ``(D,)``)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ``ids``; unknown ids are ignored."""
        ...

    def __len__(self) -> int:
        """Number of stored vectors."""
        ...
