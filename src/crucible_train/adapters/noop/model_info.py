"""Noop model info (adapter layer, no technology): knows nothing and says so.

The port asks adapters to return ``None`` for what they do not know, which is a
meaningful answer, so nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping

from crucible_train.ports.model_info import ModelConfig, ModelInfo

__all__ = ["NoopModelInfo"]


class NoopModelInfo(ModelInfo):
    """Model facts for "no model": every field ``None``."""

    def get_config(self) -> ModelConfig:
        """A :class:`~crucible_train.ports.model_info.ModelConfig` with every field ``None``."""
        return ModelConfig()

    def count_parameters(self) -> int | None:
        """``None``: unknown."""
        return None

    def get_special_tokens(self) -> Mapping[str, int] | None:
        """``None``: unknown."""
        return None
