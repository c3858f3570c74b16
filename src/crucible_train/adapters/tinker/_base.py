"""The constructor the four Tinker adapters share: one ``TinkerSettings`` block."""

from __future__ import annotations

from crucible_train.adapters.tinker._sdk import resolve_settings
from crucible_train.adapters.tinker.settings import TinkerSettings

__all__ = ["TinkerAdapter"]


class TinkerAdapter:
    """Takes the fields of :class:`~.settings.TinkerSettings` as keywords.

    The container passes a port's ``tinker:`` block as keyword arguments, and the four
    ports (training, sampling, model info, tokenizer) share that schema, so the keywords
    are validated here once and each adapter sets itself up in :meth:`_start`.
    """

    _settings: TinkerSettings

    def __init__(
        self,
        *,
        base_model: str | None = None,
        base_url: str | None = None,
        api_key: str,
        lora_rank: int = 32,
        model_path: str | None = None,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        request_timeout_s: float | None = None,
        max_retries: int | None = None,
        future_timeout_s: float | None = None,
        pipeline: bool = True,
    ) -> None:
        """Validate the settings (see :class:`~.settings.TinkerSettings`),
        then let the adapter set itself up.

        Raises:
            ConfigurationError: invalid settings, or ``base_model``/``api_key`` unset.
            AdapterUnavailableError: the ``tinker`` SDK is not installed.
        """
        values = {name: value for name, value in locals().items() if name != "self"}
        self._settings = resolve_settings(values)
        self._start()

    def _start(self) -> None:
        """Set the adapter up from ``self._settings`` (each adapter's own part)."""
        raise NotImplementedError
