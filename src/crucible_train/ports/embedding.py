"""Port: a text embedding model.

A new adapter must guarantee: one row per input text, in order, all of the same width;
float32; batching is the adapter's business (callers pass whole chunks at once);
a failure raises :class:`~crucible_train.errors.EmbeddingClientError`, never returns zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["EmbeddingClient"]


@runtime_checkable
class EmbeddingClient(Protocol):
    """Embeds texts into vectors. Thread-safe."""

    @property
    def dimension(self) -> int:
        """Width ``D`` of every embedding."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``.

        Returns:
            A float32 array of shape ``(len(texts), dimension)``; ``(0, dimension)`` for no
            texts. Idempotent.

        Raises:
            EmbeddingClientError: the model failed; nothing is returned for any text.
        """
        ...
