"""Port: read-only facts about a model (sizes, architecture, special tokens).

A new adapter must return what it knows and ``None`` for what it does not; it never
guesses. Cheap to call; safe from any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["ModelConfig", "ModelInfo"]


@attrs.frozen(kw_only=True)
class ModelConfig:
    """Model facts; every field is optional because backends know different things."""

    model_name: str | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    max_seq_length: int | None = None
    architecture: str | None = None


@runtime_checkable
class ModelInfo(Protocol):
    """Introspects one model."""

    def get_config(self) -> ModelConfig:
        """The model's configuration.

        Raises:
            ModelInfoError: the backend cannot read the model's configuration at all.
        """
        ...

    def count_parameters(self) -> int | None:
        """Number of parameters (trainable or not), or ``None`` when the backend cannot tell."""
        ...

    def get_special_tokens(self) -> Mapping[str, int] | None:
        """Special token text → id, or ``None`` when the backend cannot tell."""
        ...
