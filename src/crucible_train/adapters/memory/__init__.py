"""In-memory adapters (adapter layer, numpy): process-local stores that need no service."""

from __future__ import annotations

from crucible_train.adapters.memory.vector_store import NumpyVectorStore

__all__ = ["NumpyVectorStore"]
