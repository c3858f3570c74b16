"""Settings of the in-memory backends (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import greater_than

__all__ = ["MemoryVectorStoreSettings"]


@attrs.frozen(kw_only=True)
class MemoryVectorStoreSettings:
    """``vector_store.memory``: an in-memory numpy cosine-similarity index.

    Args:
        dimension: vector length to enforce; ``None`` takes it from the first upsert.
    """

    dimension: int | None = attrs.field(default=None, validator=greater_than(0))
