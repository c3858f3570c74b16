"""Settings of the Tinker backends (adapter layer): one class for its four ports.

Importing this module does not import the ``tinker`` SDK.
"""

from __future__ import annotations

from typing import Any

import attrs

from crucible_train.config import (
    finite,
    greater_than,
    http_url,
    not_blank,
    required_when_selected_field,
    secret_field,
    whole_number,
)
from crucible_train.errors import ConfigurationError

__all__ = ["TinkerSettings"]


def _tinker_path(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.startswith("tinker://")):
        raise ConfigurationError(
            f"{attribute.name}: expected a tinker:// path (as save_state or "
            f"save_weights_for_sampler return) or null, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class TinkerSettings:
    """``training.tinker``, ``sampling.tinker``, ``model_info.tinker``, ``tokenizer.tinker``.

    One schema for the four ports the Tinker service serves (the hosted service, or a
    self-hosted Tinker-compatible server such as skyrl-tx), so that they describe the
    same model. The ``tinker`` SDK is the optional extra ``crucible-train[tinker]``.

    ``pipeline`` overlaps a step's forward/backward and optimiser step with preparing the
    next one: the hosted service runs queued calls in order. skyrl-tx 0.3.0's engine runs
    all queued ``optim_step`` requests together, ahead of queued ``forward_backward``
    ones, so it needs ``pipeline: false``. ``request_timeout_s`` and ``max_retries``
    reach only SDKs whose ``ServiceClient`` accepts them (0.16.x); newer ones ignore them.

    Args:
        base_model: the model the server trains or samples (``Qwen/Qwen3-8B``, or a
            server-local directory); required.
        base_url: the service URL; ``None`` uses ``$TINKER_BASE_URL`` or the SDK default
            (the hosted service).
        api_key: Tinker API key (``tml-...``), only from ``${TINKER_API_KEY}``; required.
        lora_rank: rank of the LoRA adapter the training client creates.
        model_path: training: a ``tinker://`` state (``save_state``) to start from;
            sampling: ``tinker://`` sampler weights (``save_weights_for_sampler``);
            ``None``: the base model. Unused by the tokenizer and model_info.
        seed: seeds the LoRA initialisation; ``None`` lets the server pick.
        train_mlp: train LoRA adapters on the MLP layers.
        train_attn: train LoRA adapters on the attention layers.
        train_unembed: train a LoRA adapter on the unembedding (output) layer.
        request_timeout_s: seconds per HTTP request; ``None``: the SDK default (SDK
            0.16.x only).
        max_retries: HTTP retries per request; ``None``: the SDK default (SDK 0.16.x only).
        future_timeout_s: longest wait for one result before the call fails with
            ``BackendTimeoutError``; ``None`` waits as long as the SDK does.
        pipeline: send the next training call before earlier results arrive; ``false``
            for skyrl-tx 0.3.0 (its engine reorders queued calls).
    """

    base_model: str | None = required_when_selected_field(validator=not_blank)
    base_url: str | None = attrs.field(default=None, validator=http_url)
    api_key: str = secret_field(env="TINKER_API_KEY")
    lora_rank: int = attrs.field(default=32, validator=whole_number(1))
    model_path: str | None = attrs.field(default=None, validator=_tinker_path)
    seed: int | None = attrs.field(default=None, validator=whole_number(0))
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = True
    request_timeout_s: float | None = attrs.field(default=None, validator=[finite, greater_than(0)])
    max_retries: int | None = attrs.field(default=None, validator=whole_number(0))
    future_timeout_s: float | None = attrs.field(default=None, validator=[finite, greater_than(0)])
    pipeline: bool = True
