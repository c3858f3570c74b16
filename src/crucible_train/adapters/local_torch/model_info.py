"""Local PyTorch model info (adapter layer, ``torch`` + ``transformers``).

Answers from the same settings the local training and sampling clients use, without
building real weights: the configuration comes from the Hugging Face config (built from
the shape fields, or read from ``model_path``), the parameter count from an instance on
torch's ``meta`` device (shapes only, no memory), and special tokens only from a
``tokenizer.json`` in ``model_path``. What it cannot know it answers with ``None``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from crucible_train.adapters.local_torch.model import (
    apply_lora,
    hf_config,
    quiet_transformers,
    require_packages,
    resolve_settings,
)
from crucible_train.adapters.local_torch.settings import (
    DEFAULT_LORA_TARGETS,
    LocalTorchModelSettings,
)
from crucible_train.errors import ConfigurationError, ModelInfoError
from crucible_train.ports.model_info import ModelConfig, ModelInfo

__all__ = ["LocalTorchModelInfo"]


class LocalTorchModelInfo(ModelInfo):
    """Facts about the model the ``local_torch`` settings describe. Thread-safe; cached."""

    def __init__(
        self,
        *,
        architecture: Literal["qwen3", "llama"] = "qwen3",
        model_path: str | None = None,
        vocab_size: int = 512,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        num_kv_heads: int = 2,
        head_dim: int = 32,
        intermediate_size: int = 384,
        max_seq_length: int = 2048,
        seed: int = 0,
        device: str = "cpu",
        dtype: Literal["float32", "bfloat16"] = "float32",
        num_threads: int | None = None,
        lora_rank: int = 0,
        lora_alpha: float = 32.0,
        lora_targets: Sequence[str] = DEFAULT_LORA_TARGETS,
        checkpoint_dir: str = "runs/checkpoints",
    ) -> None:
        """Validate the settings and read the model's config.

        The arguments are the fields of
        :class:`~.settings.LocalTorchModelSettings` (``model_info.local_torch``
        in ``containers.yaml``), with the same defaults; see that class for each one.

        Raises:
            ConfigurationError: invalid settings or an unreadable ``model_path``.
            AdapterUnavailableError: torch or transformers (or peft for LoRA) is missing.
        """
        # Every argument is a setting; collect them before any other local exists.
        settings = {name: value for name, value in locals().items() if name != "self"}
        self._settings = resolve_settings(settings, port="model_info")
        require_packages("model_info", lora=self._settings.lora_rank > 0)
        self._config = hf_config(self._settings)
        self._lock = threading.Lock()
        self._parameters: int | None = None

    @property
    def settings(self) -> LocalTorchModelSettings:
        """The validated settings (paths absolute)."""
        return self._settings

    def get_config(self) -> ModelConfig:
        """Vocabulary, width, depth, heads, context length and architecture of the model."""
        config = self._config
        path = self._settings.model_path
        return ModelConfig(
            model_name=Path(path).name if path is not None else None,
            vocab_size=_int_or_none(getattr(config, "vocab_size", None)),
            hidden_size=_int_or_none(getattr(config, "hidden_size", None)),
            num_layers=_int_or_none(getattr(config, "num_hidden_layers", None)),
            num_heads=_int_or_none(getattr(config, "num_attention_heads", None)),
            max_seq_length=_int_or_none(getattr(config, "max_position_embeddings", None)),
            architecture=str(getattr(config, "model_type", "")) or None,
        )

    def count_parameters(self) -> int:
        """Every parameter (tied embeddings once), LoRA adapters included when configured.

        Raises:
            ModelInfoError: transformers cannot instantiate the config's architecture.
        """
        with self._lock:
            if self._parameters is None:
                self._parameters = self._count()
            return self._parameters

    def _count(self) -> int:
        import torch
        from transformers import AutoModelForCausalLM

        auto: Any = AutoModelForCausalLM  # untyped

        try:
            # The meta device allocates no memory: a shape-only model of any size is free.
            with torch.device("meta"), quiet_transformers():
                model = auto.from_config(self._config)
                if self._settings.lora_rank > 0:
                    model = apply_lora(model, self._settings)
        except ConfigurationError:
            raise
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise ModelInfoError(
                f"local_torch model info: cannot instantiate {type(self._config).__name__}: {exc}"
            ) from exc
        return int(sum(parameter.numel() for parameter in model.parameters()))

    def get_special_tokens(self) -> Mapping[str, int] | None:
        """Special tokens from ``model_path/tokenizer.json`` (``added_tokens`` marked special).

        ``None`` for a randomly initialised model or a directory without ``tokenizer.json``.

        Raises:
            ModelInfoError: ``tokenizer.json`` exists but is not valid JSON.
        """
        if self._settings.model_path is None:
            return None
        path = Path(self._settings.model_path) / "tokenizer.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelInfoError(f"local_torch model info: cannot read {path}: {exc}") from exc
        entries = data.get("added_tokens") if isinstance(data, dict) else None
        tokens: dict[str, int] = {}
        for entry in entries if isinstance(entries, list) else []:
            if (
                isinstance(entry, dict)
                and entry.get("special")
                and isinstance(entry.get("content"), str)
                and isinstance(entry.get("id"), int)
            ):
                tokens[entry["content"]] = entry["id"]
        return tokens


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
