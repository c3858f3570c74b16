"""Noop embedding client (adapter layer, no technology): refuses to embed.

``embed_texts`` raises :class:`~crucible_train.errors.BackendNotConfiguredError` naming
``embedding.backend`` (the port forbids returning zeros in place of embeddings).
``dimension`` is 0 rather than raising, because ``isinstance`` checks against runtime
protocols read properties on Python 3.11.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.embedding import EmbeddingClient

__all__ = ["NoopEmbeddingClient"]


class NoopEmbeddingClient(EmbeddingClient):
    """An embedding client with no model behind it."""

    @property
    def dimension(self) -> int:
        """0: there is no embedding space."""
        return 0

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured("embedding", "embed_texts")
