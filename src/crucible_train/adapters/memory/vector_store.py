"""In-memory vector store (adapter layer, numpy): exact cosine search over a float32 matrix.

Vectors live in one preallocated ``(capacity, D)`` float32 matrix that doubles when full,
so a stream of small upserts costs amortised O(1) copies per row instead of the O(N) a
``np.vstack`` per upsert would. Deletes move the last row into the hole to keep rows
contiguous; results never depend on row order because ties are broken by id.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crucible_train.errors import ConfigurationError, VectorStoreError
from crucible_train.ports.vector_store import VectorMatch, VectorStore

__all__ = ["NumpyVectorStore"]

_INITIAL_CAPACITY: Final = 16
_SCORE_DECIMALS: Final = 12


def _as_finite_float32(values: Any, what: str) -> npt.NDArray[np.float32]:
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise VectorStoreError(f"{what} is not a numeric array: {exc}") from exc
    if array.dtype.kind not in "fiu":
        raise VectorStoreError(f"{what} has dtype {array.dtype}; use a float (or integer) array")
    with np.errstate(over="ignore"):
        converted = array.astype(np.float32)
    # Checked after the cast: a finite float64 beyond float32's range becomes inf.
    if not np.isfinite(converted).all():
        raise VectorStoreError(f"{what} contains NaN or infinite values (after float32 conversion)")
    return converted


def _check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str | bytes):
        raise VectorStoreError("ids must be a sequence of strings, not a single string")
    id_list = list(ids)
    for position, item in enumerate(id_list):
        if not isinstance(item, str) or not item:
            raise VectorStoreError(
                f"ids[{position}] is {item!r}; every id must be a non-empty string"
            )
    return id_list


class NumpyVectorStore(VectorStore):
    """Exact cosine top-k search over vectors held in process memory. Thread-safe.

    Args:
        dimension: width ``D`` of every vector; ``None`` takes it from the first upsert.

    Raises:
        ConfigurationError: ``dimension`` is not a whole number >= 1.

    Metadata is deep-copied on the way in and out, so neither the caller nor a query
    result can change what is stored.
    """

    def __init__(self, *, dimension: int | None = None) -> None:
        if dimension is not None and (
            isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1
        ):
            raise ConfigurationError(
                f"NumpyVectorStore dimension is {dimension!r}; use a whole number >= 1 or None"
            )
        self._lock = threading.RLock()
        self._dimension: int | None = dimension
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._metadata: list[dict[str, Any]] = []
        self._matrix: npt.NDArray[np.float32] = np.zeros((0, dimension or 0), dtype=np.float32)
        self._norms: npt.NDArray[np.float64] = np.zeros(0, dtype=np.float64)

    @property
    def dimension(self) -> int | None:
        """Width of the stored vectors, or ``None`` before the first upsert."""
        return self._dimension

    def __len__(self) -> int:
        """Number of stored vectors."""
        with self._lock:
            return len(self._ids)

    def __repr__(self) -> str:
        return f"NumpyVectorStore(dimension={self._dimension}, size={len(self)})"

    # --- port --------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.NDArray[np.floating[Any]],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Insert or replace ``vectors`` (shape ``(len(ids), D)``) under ``ids``.

        The whole batch is validated before anything is stored, so a rejected upsert
        changes nothing.

        Raises:
            VectorStoreError: ids are not unique non-empty strings, ``vectors`` is not a
                finite numeric ``(len(ids), D)`` array, ``D`` differs from the store's, or
                ``metadata`` is not one mapping per id.
        """
        id_list = _check_ids(ids)
        seen: set[str] = set()
        duplicates: set[str] = set()
        for item in id_list:
            (duplicates if item in seen else seen).add(item)
        if duplicates:
            raise VectorStoreError(
                f"upsert got duplicate ids {sorted(duplicates)[:5]}; "
                "each id may appear once per upsert"
            )
        matrix = _as_finite_float32(vectors, "upsert vectors")
        if not id_list and matrix.size == 0:
            return
        if matrix.ndim != 2 or matrix.shape[0] != len(id_list):
            raise VectorStoreError(
                f"upsert vectors have shape {list(matrix.shape)}; expected "
                f"[{len(id_list)}, D] (one row per id)"
            )
        rows_metadata = self._check_metadata(metadata, len(id_list))
        with self._lock:
            width = matrix.shape[1]
            if self._dimension is None:
                if width < 1:
                    raise VectorStoreError("upsert vectors have width 0; vectors need D >= 1")
                self._dimension = width
                self._matrix = np.zeros((0, width), dtype=np.float32)
            elif width != self._dimension:
                raise VectorStoreError(
                    f"dimension mismatch: upsert vectors have width {width} but this store "
                    f"holds {self._dimension}-dimensional vectors"
                )
            norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
            for item, row, norm, meta in zip(id_list, matrix, norms, rows_metadata, strict=True):
                index = self._rows.get(item)
                if index is None:
                    index = len(self._ids)
                    self._reserve(index + 1)
                    self._ids.append(item)
                    self._metadata.append(meta)
                    self._rows[item] = index
                else:
                    self._metadata[index] = meta
                self._matrix[index] = row
                self._norms[index] = norm

    def query(self, vector: npt.NDArray[np.floating[Any]], top_k: int = 10) -> list[VectorMatch]:
        """The ``top_k`` stored vectors most cosine-similar to ``vector``, best first.

        Scores are rounded to 12 decimals; equal scores are ordered by id; a zero vector
        (stored or queried) scores 0.

        Raises:
            VectorStoreError: ``top_k`` < 1, ``vector`` is not a finite ``(D,)`` array, or its
                width differs from the store's.
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
            raise VectorStoreError(f"top_k is {top_k!r}; use a whole number >= 1")
        query = _as_finite_float32(vector, "query vector")
        if query.ndim != 1:
            raise VectorStoreError(
                f"query vector has shape {list(query.shape)}; expected [D] (one vector)"
            )
        with self._lock:
            if self._dimension is not None and query.shape[0] != self._dimension:
                raise VectorStoreError(
                    f"dimension mismatch: query vector has width {query.shape[0]} but this "
                    f"store holds {self._dimension}-dimensional vectors"
                )
            size = len(self._ids)
            if size == 0:
                return []
            scores = self._scores(query, size)
            candidates = self._candidates(scores, int(top_k))
            ranked = sorted(candidates, key=lambda i: (-scores[i], self._ids[i]))[:top_k]
            return [
                VectorMatch(
                    id=self._ids[i],
                    score=float(scores[i]),
                    metadata=copy.deepcopy(self._metadata[i]),
                )
                for i in ranked
            ]

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ``ids``; unknown ids are ignored.

        Raises:
            VectorStoreError: ``ids`` is a single string or holds a non-string.
        """
        id_list = _check_ids(ids)
        with self._lock:
            for item in id_list:
                index = self._rows.pop(item, None)
                if index is None:
                    continue
                last = len(self._ids) - 1
                if index != last:
                    moved = self._ids[last]
                    self._ids[index] = moved
                    self._metadata[index] = self._metadata[last]
                    self._matrix[index] = self._matrix[last]
                    self._norms[index] = self._norms[last]
                    self._rows[moved] = index
                self._ids.pop()
                self._metadata.pop()

    # --- helpers -----------------------------------------------------------------------

    @staticmethod
    def _check_metadata(
        metadata: Sequence[Mapping[str, Any]] | None, count: int
    ) -> list[dict[str, Any]]:
        if metadata is None:
            return [{} for _ in range(count)]
        rows = list(metadata)
        if len(rows) != count:
            raise VectorStoreError(
                f"upsert got {len(rows)} metadata entries for {count} ids; give one per id"
            )
        copied: list[dict[str, Any]] = []
        for position, meta in enumerate(rows):
            if not isinstance(meta, Mapping):
                raise VectorStoreError(
                    f"metadata[{position}] is a {type(meta).__name__}; use a mapping"
                )
            copied.append(copy.deepcopy(dict(meta)))
        return copied

    def _reserve(self, needed: int) -> None:
        capacity = self._matrix.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(_INITIAL_CAPACITY, capacity * 2, needed)
        matrix = np.zeros((new_capacity, self._matrix.shape[1]), dtype=np.float32)
        matrix[:capacity] = self._matrix
        norms = np.zeros(new_capacity, dtype=np.float64)
        norms[:capacity] = self._norms
        self._matrix, self._norms = matrix, norms

    def _scores(self, query: npt.NDArray[np.float32], size: int) -> npt.NDArray[np.float64]:
        query_norm = float(np.linalg.norm(query.astype(np.float64)))
        if query_norm == 0.0:
            return np.zeros(size, dtype=np.float64)
        dots = self._matrix[:size].astype(np.float64) @ query.astype(np.float64)
        denominators = self._norms[:size] * query_norm
        scores = np.zeros(size, dtype=np.float64)
        nonzero = denominators > 0
        scores[nonzero] = dots[nonzero] / denominators[nonzero]
        # Rounding to 12 decimals makes mathematically equal similarities (parallel vectors
        # of different lengths) exactly equal, so they tie and are ordered by id instead of
        # by a last-bit float error; clipping keeps the port's [-1, 1] promise.
        return np.clip(np.round(scores, _SCORE_DECIMALS), -1.0, 1.0)

    @staticmethod
    def _candidates(scores: npt.NDArray[np.float64], top_k: int) -> list[int]:
        """Indices that can appear in the top ``top_k``, including every tie at the cut."""
        if top_k >= scores.shape[0]:
            return list(range(scores.shape[0]))
        threshold = -np.partition(-scores, top_k - 1)[top_k - 1]
        return [int(i) for i in np.flatnonzero(scores >= threshold)]
