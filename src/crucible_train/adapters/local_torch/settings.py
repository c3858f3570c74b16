"""Settings of the local PyTorch engine (adapter layer): one class for its three ports.

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import attrs

from crucible_train.config import not_blank, one_of, path_field, whole_number
from crucible_train.errors import ConfigurationError

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "LOCAL_TORCH_ARCHITECTURES",
    "LOCAL_TORCH_DTYPES",
    "LocalTorchModelSettings",
]

LOCAL_TORCH_ARCHITECTURES = ("qwen3", "llama")
LOCAL_TORCH_DTYPES = ("float32", "bfloat16")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _torch_device(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:[0-9]+)?", value):
        raise ConfigurationError(
            f"{attribute.name}: expected 'cpu', 'cuda' or 'cuda:N', got {value!r}"
        )


def _positive_number(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(
            f"{attribute.name}: expected a finite number greater than 0, got {value!r}"
        )


def _module_names(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(item, str) and item.strip() for item in value)
    ):
        raise ConfigurationError(
            f"{attribute.name}: expected a non-empty list of module names such as "
            f"[q_proj, v_proj], got {value!r}"
        )


def _optional_path(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{attribute.name}: expected a directory path or null")


@attrs.frozen(kw_only=True)
class LocalTorchModelSettings:
    """``training.local_torch``, ``sampling.local_torch``, ``model_info.local_torch``.

    One schema for the three ports the local PyTorch engine serves, so that the trainer,
    the sampler and model info describe the same model. Without ``model_path`` the engine
    builds a randomly initialised causal LM from the shape fields (deterministic from
    ``seed``); with it, the Hugging Face model directory's ``config.json`` decides the
    architecture and every shape field is ignored.

    Args:
        architecture: ``qwen3`` or ``llama`` (random init; ignored with ``model_path``).
        model_path: a local Hugging Face model directory (never downloaded); ``None``
            builds a random model.
        vocab_size: token ids the model embeds.
        hidden_size: width of the residual stream.
        num_layers: transformer blocks.
        num_heads: attention (query) heads.
        num_kv_heads: key/value heads (grouped-query attention); must divide ``num_heads``.
        head_dim: width of one attention head.
        intermediate_size: width of the MLP.
        max_seq_length: longest sequence (positions) the model accepts.
        seed: seeds the random initialisation (weights and LoRA adapters).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (an error when CUDA is absent).
        dtype: parameter dtype, ``float32`` or ``bfloat16``.
        num_threads: ``torch.set_num_threads`` (process-wide); ``None`` keeps torch's.
        lora_rank: 0 trains every weight; > 0 trains LoRA adapters of this rank only.
        lora_alpha: LoRA scaling numerator (the update is scaled by alpha / rank).
        lora_targets: names of the linear modules that get LoRA adapters.
        checkpoint_dir: where ``save_state`` and ``save_weights_for_sampler`` write
            (``train`` uses ``<run dir>/checkpoints``).
    """

    architecture: Literal["qwen3", "llama"] = attrs.field(
        default="qwen3", validator=one_of(LOCAL_TORCH_ARCHITECTURES)
    )
    model_path: str | None = path_field(default=None, validator=_optional_path)
    vocab_size: int = attrs.field(default=512, validator=whole_number(1))
    hidden_size: int = attrs.field(default=128, validator=whole_number(1))
    num_layers: int = attrs.field(default=4, validator=whole_number(1))
    num_heads: int = attrs.field(default=4, validator=whole_number(1))
    num_kv_heads: int = attrs.field(default=2, validator=whole_number(1))
    head_dim: int = attrs.field(default=32, validator=whole_number(1))
    intermediate_size: int = attrs.field(default=384, validator=whole_number(1))
    max_seq_length: int = attrs.field(default=2048, validator=whole_number(2))
    seed: int = attrs.field(default=0, validator=whole_number(0))
    device: str = attrs.field(default="cpu", validator=_torch_device)
    dtype: Literal["float32", "bfloat16"] = attrs.field(
        default="float32", validator=one_of(LOCAL_TORCH_DTYPES)
    )
    num_threads: int | None = attrs.field(default=None, validator=whole_number(1))
    lora_rank: int = attrs.field(default=0, validator=whole_number(0))
    lora_alpha: float = attrs.field(default=32.0, validator=_positive_number)
    lora_targets: list[str] = attrs.field(
        factory=lambda: list(DEFAULT_LORA_TARGETS), validator=_module_names
    )
    checkpoint_dir: str = path_field(default="runs/checkpoints", validator=not_blank)

    def __attrs_post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ConfigurationError(
                f"num_kv_heads: must divide num_heads ({self.num_heads}), got {self.num_kv_heads}"
            )
