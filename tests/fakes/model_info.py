"""FakeModelInfo: fixed facts about a model; records what was asked."""

from __future__ import annotations

from collections.abc import Mapping

from crucible_train.ports.model_info import ModelConfig, ModelInfo


class FakeModelInfo(ModelInfo):
    """Answers with the facts given.

    Args:
        config: what ``get_config`` returns.
        parameters: what ``count_parameters`` returns.
        special_tokens: what ``get_special_tokens`` returns.
        error: ``get_config`` raises this instead.

    Records :attr:`asked`: the name of each method called.
    """

    def __init__(
        self,
        *,
        config: ModelConfig | None = None,
        parameters: int | None = None,
        special_tokens: Mapping[str, int] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.config = config if config is not None else ModelConfig()
        self.parameters = parameters
        self.special_tokens = special_tokens
        self.error = error
        self.asked: list[str] = []

    def get_config(self) -> ModelConfig:
        """``config``, or raises ``error``."""
        self.asked.append("get_config")
        if self.error is not None:
            raise self.error
        return self.config

    def count_parameters(self) -> int | None:
        """``parameters``."""
        self.asked.append("count_parameters")
        return self.parameters

    def get_special_tokens(self) -> Mapping[str, int] | None:
        """``special_tokens``."""
        self.asked.append("get_special_tokens")
        return None if self.special_tokens is None else dict(self.special_tokens)
