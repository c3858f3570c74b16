"""Tinker model info (adapter layer, optional ``tinker`` SDK).

The Tinker API describes a model only through ``TrainingClient.get_info()``: its name
and architecture family (``arch``). This adapter asks once, on the first question, by
creating a LoRA training client for ``base_model`` (the only way the API offers, so it
opens a session and a model on the server), and caches the answer. Sizes, the parameter
count and special tokens are not part of the API: they are ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible_train.adapters.tinker._base import TinkerAdapter
from crucible_train.adapters.tinker._dispatch import Lazy
from crucible_train.adapters.tinker._sdk import (
    import_tinker,
    new_service_client,
    resolved,
    translate,
)
from crucible_train.adapters.tinker.settings import TinkerSettings
from crucible_train.errors import ModelInfoError
from crucible_train.ports.model_info import ModelConfig, ModelInfo

__all__ = ["TinkerModelInfo"]


class TinkerModelInfo(TinkerAdapter, ModelInfo):
    """What the Tinker service says about ``base_model``. Thread-safe; cached."""

    def _start(self) -> None:
        """Prepare the question; the service is asked on the first call.

        The settings are the fields of :class:`~.settings.TinkerSettings`
        (``model_info.tinker``).

        Raises:
            AdapterUnavailableError: the ``tinker`` SDK is not installed.
        """
        self._tinker = import_tinker("model_info")
        self._config: Lazy[ModelConfig] = Lazy(self._ask, name="tinker-model-info")

    def __repr__(self) -> str:
        return f"TinkerModelInfo(settings={self._settings!r})"

    @property
    def settings(self) -> TinkerSettings:
        """The validated settings (``repr`` masks the API key)."""
        return self._settings

    def _ask(self) -> ModelConfig:
        """Ask the service once; runs on a helper thread (see ``Lazy``)."""
        tinker, settings = self._tinker, self._settings
        service = new_service_client(tinker, settings)
        client = resolved(
            service.create_lora_training_client(
                base_model=settings.base_model, rank=settings.lora_rank
            ),
            (tinker.TrainingClient,),
            settings.future_timeout_s,
        )
        info: Any = client.get_info()
        data = getattr(info, "model_data", None)
        name = getattr(data, "model_name", None) or getattr(data, "base_model", None)
        arch = getattr(data, "arch", None)
        return ModelConfig(
            model_name=str(name) if name else None,
            architecture=str(arch) if arch else None,
        )

    def get_config(self) -> ModelConfig:
        """The model's name and architecture family as the service reports them.

        Raises:
            ModelInfoError: the service could not be asked (its ``__cause__`` is the
                typed ``BackendError``) or answered something unusable.
        """
        settings = self._settings
        try:
            return self._config.get(settings.future_timeout_s, "model_info.get_config")
        except Exception as exc:
            error = translate(
                exc, "model_info.get_info", fallback=ModelInfoError, secret=settings.api_key
            )
            if not isinstance(error, ModelInfoError):
                # The port promises ModelInfoError; the typed backend error is the cause.
                raise ModelInfoError(str(error)) from error
            raise error from error.__cause__

    def count_parameters(self) -> int | None:
        """Always ``None``: the Tinker API does not report parameter counts."""
        return None

    def get_special_tokens(self) -> Mapping[str, int] | None:
        """Always ``None``: use the ``tinker`` tokenizer backend for special tokens."""
        return None
