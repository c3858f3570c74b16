"""sentence-transformers adapters (adapter layer; needs the ``embeddings`` extra).

Importing this package does not import ``sentence_transformers`` or ``torch``;
constructing an adapter does.
"""

from __future__ import annotations

from crucible_train.adapters.sentence_transformers.embedding_client import (
    SentenceTransformersEmbeddingClient,
)

__all__ = ["SentenceTransformersEmbeddingClient"]
