"""The local PyTorch engine's model: build it from settings, save and load it for sampling.

Adapter layer (``torch``, ``transformers``, ``peft``), shared by the training client, the
sampling client and model info. Every heavy import happens inside a function, so importing
this module costs nothing and a missing package surfaces as
:class:`~crucible_train.errors.AdapterUnavailableError` when a model is first built.

A model is either a randomly initialised causal LM built from the shape fields of
:class:`~.settings.LocalTorchModelSettings` (Qwen3 or Llama architecture,
deterministic from ``seed``) or a local Hugging Face model directory (``model_path``; never
downloaded), optionally wrapped with LoRA adapters by ``peft`` (``lora_rank > 0``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crucible_train.adapters.local_torch._files import atomic_directory
from crucible_train.adapters.local_torch.settings import LocalTorchModelSettings
from crucible_train.config import resolve_path_fields, validate_settings
from crucible_train.errors import AdapterUnavailableError, ConfigurationError

if TYPE_CHECKING:
    import torch

__all__ = [
    "INSTALL_COMMAND",
    "apply_lora",
    "base_model_config",
    "build_model",
    "hf_config",
    "is_lora",
    "load_for_sampler",
    "model_fingerprint",
    "quiet_transformers",
    "require_packages",
    "resolve_settings",
    "save_for_sampler",
    "torch_device",
    "torch_dtype",
]

INSTALL_COMMAND: Final = "pip install torch==2.13.0 && pip install 'crucible-train[local]'"
"""How to install the engine's packages; torch first, so pip does not pull a CUDA build."""

_DTYPES: Final = ("float32", "bfloat16", "float16")

# transformers' progress bars and peft's FutureWarning are process-wide switches; one lock
# keeps two clients from restoring each other's state in the wrong order.
_QUIET_LOCK = threading.RLock()


def require_packages(port: str = "training", *, lora: bool = False) -> None:
    """Check that the engine's packages import; raise a helpful error when one does not.

    Args:
        port: the ``containers.yaml`` port key named in the ``noop`` hint.
        lora: also require ``peft`` (needed only for LoRA).

    Raises:
        AdapterUnavailableError: a package is missing or broken; the message names it,
            the install command and the ``<port>.backend: noop`` fallback.
    """
    names = ["torch", "transformers", "safetensors"] + (["peft"] if lora else [])
    missing: list[str] = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise AdapterUnavailableError(
            f"the local_torch engine needs {', '.join(missing)}, which cannot be imported; "
            f"install it with `{INSTALL_COMMAND}` (torch first, so pip does not pull a CUDA "
            f"build), or select another backend such as `{port}.backend: noop`"
        )


def resolve_settings(
    settings: LocalTorchModelSettings | Mapping[str, Any], *, port: str = "training"
) -> LocalTorchModelSettings:
    """Validate keyword settings into :class:`LocalTorchModelSettings`.

    Relative paths (``model_path``, ``checkpoint_dir``) are made absolute against the
    current directory, as ``containers.yaml`` loading does.

    Args:
        settings: a settings instance (returned with its paths resolved) or a mapping of
            field name to value; omitted fields take their defaults.
        port: the port key used in messages (``training.local_torch.hidden_size: ...``).

    Raises:
        ConfigurationError: every problem at once, one per line.
    """
    if isinstance(settings, LocalTorchModelSettings):
        instance: Any = settings
    else:
        instance, problems = validate_settings(
            LocalTorchModelSettings, dict(settings), f"{port}.local_torch"
        )
        if problems:
            raise ConfigurationError(*problems)
    resolved: LocalTorchModelSettings = resolve_path_fields(instance, os.getcwd())
    return resolved


def torch_device(name: str | torch.device) -> torch.device:
    """The torch device for a settings value, refusing CUDA where it is absent.

    Raises:
        ConfigurationError: ``cuda`` was asked for but torch sees no CUDA device (or not
            that many).
    """
    import torch

    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device is {str(device)!r} but torch {torch.__version__} sees no CUDA device "
                "(a CPU-only build, or no GPU); set device: cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigurationError(
                f"device is {str(device)!r} but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    elif device.type != "cpu":
        raise ConfigurationError(f"device is {str(device)!r}; use 'cpu', 'cuda' or 'cuda:N'")
    return device


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """The torch dtype for ``"float32"``, ``"bfloat16"`` or ``"float16"`` (or a dtype).

    Raises:
        ConfigurationError: any other name.
    """
    import torch

    if isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise ConfigurationError(f"dtype is {name!r}; valid dtypes: {', '.join(_DTYPES)}")
    dtype: torch.dtype = getattr(torch, name)
    return dtype


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars, no peft FutureWarning, for the duration of a call.

    Saving a checkpoint every N steps must not draw progress bars over the console
    metrics table, and pytest runs with warnings as errors.
    """
    from transformers.utils import logging

    hf_logging: Any = logging  # untyped
    with _QUIET_LOCK, warnings.catch_warnings():
        # peft 0.21 reads a property transformers 5 deprecated; nothing for us to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        enabled = hf_logging.is_progress_bar_enabled()
        if enabled:
            hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if enabled:
                hf_logging.enable_progress_bar()


def _model_directory(path: str, what: str) -> Path:
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ConfigurationError(f"{what} {str(directory)!r} is not a directory")
    if not (directory / "config.json").is_file():
        raise ConfigurationError(
            f"{what} {str(directory)!r} has no config.json; expected a Hugging Face model "
            "directory (save_pretrained layout)"
        )
    return directory


def hf_config(settings: LocalTorchModelSettings) -> Any:
    """The Hugging Face config of the model ``settings`` describe, without any weights.

    With ``model_path`` it is read from the directory's ``config.json``; otherwise it is
    a ``Qwen3Config`` or ``LlamaConfig`` built from the shape fields, with tied input and
    output embeddings.

    Raises:
        ConfigurationError: ``model_path`` is not a readable model directory.
    """
    if settings.model_path is not None:
        from transformers import AutoConfig

        directory = _model_directory(settings.model_path, "model_path")
        try:
            return AutoConfig.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"model_path {str(directory)!r}: cannot read config.json: {exc}"
            ) from exc
    shape: dict[str, Any] = {
        "vocab_size": settings.vocab_size,
        "hidden_size": settings.hidden_size,
        "num_hidden_layers": settings.num_layers,
        "num_attention_heads": settings.num_heads,
        "num_key_value_heads": settings.num_kv_heads,
        "head_dim": settings.head_dim,
        "intermediate_size": settings.intermediate_size,
        "max_position_embeddings": settings.max_seq_length,
        "tie_word_embeddings": True,
    }
    if settings.architecture == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**shape)
    from transformers import Qwen3Config

    return Qwen3Config(**shape)


def build_model(settings: LocalTorchModelSettings) -> torch.nn.Module:
    """Build the causal LM ``settings`` describe, on its device and dtype, in eval mode.

    Random initialisation (and LoRA adapter initialisation) draws from a forked torch RNG
    seeded with ``settings.seed``: the same settings give bit-identical weights, and the
    caller's global RNG stream is left as it was. ``num_threads``, when set, is applied
    with ``torch.set_num_threads`` (a process-wide setting). The model stays in eval mode
    (no dropout), so training and evaluation passes compute the same function.

    Args:
        settings: validated settings (see :func:`resolve_settings`).

    Returns:
        A ``transformers`` causal LM, or a ``peft`` model wrapping one when
        ``settings.lora_rank > 0`` (only the adapters then require gradients).

    Raises:
        AdapterUnavailableError: torch, transformers, safetensors (or peft) is missing.
        ConfigurationError: CUDA asked for but absent, an unreadable ``model_path``, or
            LoRA targets that name no module of the model.
    """
    require_packages(lora=settings.lora_rank > 0)
    import torch
    from transformers import AutoModelForCausalLM

    auto: Any = AutoModelForCausalLM  # untyped
    if settings.num_threads is not None:
        torch.set_num_threads(settings.num_threads)
    device = torch_device(settings.device)
    dtype = torch_dtype(settings.dtype)
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(settings.seed)
        if settings.model_path is not None:
            model = _load_directory(settings.model_path, "model_path", dtype)
        else:
            model = auto.from_config(hf_config(settings)).to(dtype=dtype)
        if settings.lora_rank > 0:
            model = apply_lora(model, settings)
    model.to(device)
    model.eval()
    result: torch.nn.Module = model
    return result


def _load_directory(path: str, what: str, dtype: torch.dtype) -> Any:
    from transformers import AutoModelForCausalLM

    directory = _model_directory(path, what)
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(directory), local_files_only=True, dtype=dtype
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigurationError(
            f"{what} {str(directory)!r}: cannot load a causal LM: {type(exc).__name__}: {exc}"
        ) from exc


def apply_lora(model: Any, settings: LocalTorchModelSettings) -> Any:
    """Wrap ``model`` with ``peft`` LoRA adapters as ``settings`` ask (rank, alpha, targets).

    Adapters get no dropout and no bias; ``lora_B`` starts at zero, so the wrapped model
    computes exactly what ``model`` did. Call inside :func:`quiet_transformers`.

    Raises:
        ConfigurationError: ``lora_targets`` names no module of the model.
    """
    import peft

    options: dict[str, Any] = {
        "r": settings.lora_rank,
        "lora_alpha": settings.lora_alpha,  # typed int in peft, but any positive number works
        "target_modules": list(settings.lora_targets),
        "lora_dropout": 0.0,
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }
    lora = peft.LoraConfig(**options)
    try:
        return peft.get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigurationError(
            f"lora_targets {list(settings.lora_targets)!r} do not fit this model: {exc}"
        ) from exc


def is_lora(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a ``peft`` wrapper (LoRA adapters over a frozen base)."""
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def base_model_config(model: torch.nn.Module) -> Any:
    """The Hugging Face config of the underlying causal LM (through a ``peft`` wrapper)."""
    wrapper: Any = model  # transformers and peft are untyped
    return wrapper.get_base_model().config if is_lora(model) else wrapper.config


def model_fingerprint(model: torch.nn.Module, settings: LocalTorchModelSettings) -> dict[str, Any]:
    """What must match for a training state to load into this model.

    The architecture and every shape that decides a weight's size, plus the LoRA
    configuration; for LoRA on a randomly initialised base also its ``seed``, because the
    base weights are not saved with the state and come from that seed.

    Returns:
        A JSON-safe mapping (stored in a checkpoint's manifest).
    """
    config = base_model_config(model)
    heads = int(config.num_attention_heads)
    lora = settings.lora_rank > 0
    head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
    return {
        "architecture": str(config.model_type),
        "vocab_size": int(config.vocab_size),
        "hidden_size": int(config.hidden_size),
        "num_layers": int(config.num_hidden_layers),
        "num_heads": heads,
        "num_kv_heads": int(getattr(config, "num_key_value_heads", None) or heads),
        "head_dim": int(head_dim),
        "intermediate_size": int(config.intermediate_size),
        "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        "lora_rank": settings.lora_rank,
        "lora_alpha": float(settings.lora_alpha) if lora else None,
        "lora_targets": sorted(settings.lora_targets) if lora else None,
        "base_seed": settings.seed if lora and settings.model_path is None else None,
    }


def save_for_sampler(model: torch.nn.Module, directory: str | os.PathLike[str]) -> str:
    """Write ``model`` as a Hugging Face ``save_pretrained`` directory (safetensors).

    A LoRA model is merged into a copy first, so the directory holds plain weights any
    ``AutoModelForCausalLM.from_pretrained`` can load; the model passed in is unchanged.
    The directory is written atomically (a temporary directory next to it, then a rename),
    so a reader never sees a half-written one; an existing directory is replaced.

    Args:
        model: the model to save (a ``transformers`` causal LM or ``peft`` wrapper).
        directory: where to write.

    Returns:
        The directory's absolute path.
    """
    import torch

    destination = Path(directory).expanduser().absolute()
    wrapper: Any = model  # transformers and peft are untyped
    with torch.no_grad(), quiet_transformers():
        plain = copy.deepcopy(wrapper).merge_and_unload() if is_lora(model) else wrapper
        with atomic_directory(destination) as temporary:
            plain.save_pretrained(str(temporary))
    return str(destination)


def load_for_sampler(
    directory: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
) -> torch.nn.Module:
    """Load a directory written by :func:`save_for_sampler` (or any local HF model) for sampling.

    Args:
        directory: a Hugging Face model directory; never looked up on the hub.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or a ``torch.dtype``.

    Returns:
        The causal LM on ``device`` in eval mode.

    Raises:
        ConfigurationError: the directory does not exist, has no ``config.json`` or its
            weights cannot be loaded; CUDA asked for but absent; an unknown dtype.
    """
    require_packages("sampling")
    target = torch_device(device)
    wanted = torch_dtype(dtype)
    with quiet_transformers():
        model = _load_directory(os.fspath(directory), "sampler weights directory", wanted)
    model.to(target)
    model.eval()
    result: torch.nn.Module = model
    return result
