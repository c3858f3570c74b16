"""Export a local PyTorch engine checkpoint as a Hugging Face directory (adapter layer).

The engine knows its own checkpoint format: a checkpoint's sampler directory is a
``save_pretrained`` directory with any LoRA merged in, and its training state holds the
trained weights (for LoRA, the adapters only) with SHA-256 checksums in ``manifest.json``.
:func:`export_checkpoint` turns one into a directory any ``transformers`` (or ``peft``)
user loads: ``config.json`` and ``model.safetensors`` (merged), or ``adapter_config.json``
and ``adapter_model.safetensors`` in PEFT's layout (adapter), plus the tokenizer files it
is given and a ``generation_config.json`` whose ``eos_token_id`` are the renderer's stop
ids. The directory is written into a temporary one and renamed, so nothing half-written
is ever left at ``out``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from crucible_train.adapters.local_torch._files import atomic_directory
from crucible_train.adapters.local_torch.model import (
    build_model,
    quiet_transformers,
    require_packages,
    resolve_settings,
)
from crucible_train.adapters.local_torch.training_state import verified_state_file
from crucible_train.errors import ConfigurationError, TrainingClientError

__all__ = ["EXPORT_MODES", "ExportResult", "export_checkpoint"]

EXPORT_MODES: Final = ("merged", "adapter")

ADAPTER_CONFIG: Final = "adapter_config.json"
ADAPTER_WEIGHTS: Final = "adapter_model.safetensors"
BASE_DIR: Final = "base_model"
"""Where an adapter export of a randomly initialised base writes that base (no file held it)."""

_STATE_WEIGHTS: Final = "weights.safetensors"
_ADAPTER_NAME: Final = ".default"  # peft's name of the one adapter, absent from its files


@attrs.frozen(kw_only=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote.

    Attributes:
        out: the exported directory (absolute).
        mode: ``merged`` or ``adapter``.
        files: the file names written, relative to ``out``, sorted.
        base_model: for ``adapter``: the base model directory the adapter applies to.
    """

    out: Path
    mode: str
    files: tuple[str, ...]
    base_model: str | None = None


def _check_safetensors(directory: Path) -> None:
    """Read every tensor of every ``*.safetensors`` file, naming the first unreadable one."""
    from safetensors import SafetensorError, safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise TrainingClientError(
            f"export: the checkpoint's weights directory {directory} holds no *.safetensors "
            "file; the checkpoint is incomplete"
        )
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                    handle.get_tensor(key)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise TrainingClientError(
                f"export: {path} is corrupted or truncated ({exc}); re-save the checkpoint or "
                "export another step"
            ) from exc


def _load_sampler(directory: Path) -> Any:
    from transformers import AutoModelForCausalLM

    if not (directory / "config.json").is_file():
        raise TrainingClientError(
            f"export: {directory / 'config.json'} is missing; the checkpoint is incomplete"
        )
    try:
        json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrainingClientError(
            f"export: {directory / 'config.json'} is corrupted: {exc}"
        ) from exc
    _check_safetensors(directory)
    with quiet_transformers():
        try:
            return AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise TrainingClientError(
                f"export: cannot load the checkpoint's weights from {directory}: {exc}"
            ) from exc


def _check_against_state(model: Any, sampler: Path, state_path: Path | None) -> None:
    """A full fine-tune's state holds every weight with a checksum; the sampler's must equal it.

    The sampler directory has no checksums of its own: this catches a flipped bit that
    leaves its safetensors header valid. (A LoRA state holds only the adapters.)
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if state_path is None:
        return
    weights_file = verified_state_file(state_path, _STATE_WEIGHTS, what="export")
    try:
        saved = load_file(str(weights_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise TrainingClientError(f"export: {weights_file} cannot be read: {exc}") from exc
    current = model.state_dict()
    for name, tensor in saved.items():
        if name in current and not torch.equal(current[name].to(tensor.dtype), tensor):
            files = ", ".join(str(p) for p in sorted(sampler.glob("*.safetensors")))
            raise TrainingClientError(
                f"export: {files} is corrupted: weight {name} differs from the checkpoint's "
                f"checksummed training state {weights_file}; export another step"
            )


def _write_generation_config(directory: Path, eos_token_ids: Sequence[int]) -> None:
    from transformers import GenerationConfig

    ids = list(eos_token_ids)
    generation: Any = GenerationConfig  # untyped
    config = generation(eos_token_id=ids[0] if len(ids) == 1 else ids)
    config.save_pretrained(str(directory))


def _peft_adapter_config(settings: Any, base_model: str) -> dict[str, Any]:
    """PEFT's ``adapter_config.json`` for the engine's LoRA (no dropout, no bias)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": settings.lora_rank,
        "lora_alpha": settings.lora_alpha,
        "target_modules": sorted(settings.lora_targets),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
    }


def _write_adapter(
    temporary: Path, state_path: Path, settings: Any, out: Path
) -> tuple[str, dict[str, Any]]:
    """The PEFT adapter files in ``temporary``; returns the base model path and the config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    weights_file = verified_state_file(state_path, _STATE_WEIGHTS, what="export")
    try:
        tensors = load_file(str(weights_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise TrainingClientError(f"export: {weights_file} cannot be read: {exc}") from exc
    adapter = {
        name.replace(f"{_ADAPTER_NAME}.", "."): tensor.contiguous()
        for name, tensor in tensors.items()
        if ".lora_" in name
    }
    if not adapter:
        raise TrainingClientError(f"export: {weights_file} holds no LoRA adapter weights")
    save_file(adapter, str(temporary / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    if settings.model_path is not None:
        base = str(Path(settings.model_path).absolute())
    else:
        # The base was drawn from `seed` and never saved; rebuild it so the adapter has
        # a base to load onto.
        plain = build_model(attrs.evolve(settings, lora_rank=0, device="cpu"))
        with quiet_transformers():
            plain.save_pretrained(str(temporary / BASE_DIR))  # type: ignore[operator]
        base = str(out / BASE_DIR)
    config = _peft_adapter_config(settings, base)
    (temporary / ADAPTER_CONFIG).write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return base, config


def export_checkpoint(
    *,
    sampler_path: str | Path,
    state_path: str | Path | None,
    settings: Mapping[str, Any],
    out: str | Path,
    mode: Literal["merged", "adapter"] = "merged",
    tokenizer_files: Mapping[str, Path] | None = None,
    eos_token_ids: Sequence[int] = (),
) -> ExportResult:
    """Write one checkpoint as a Hugging Face directory at ``out`` (replacing it atomically).

    Args:
        sampler_path: the checkpoint's sampler weights directory (LoRA merged in).
        state_path: the checkpoint's training state (needed for ``adapter``).
        settings: the run's ``training.local_torch`` settings.
        out: the directory to write; the caller decides whether replacing it is allowed.
        mode: ``merged`` (plain weights) or ``adapter`` (a PEFT LoRA adapter directory).
        tokenizer_files: file name in ``out`` -> file copied there as it is
            (``tokenizer.json``, ``tokenizer_config.json`` ...).
        eos_token_ids: the renderer's stop ids (``generation_config.json``); empty: none.

    Returns:
        What was written.

    Raises:
        ConfigurationError: ``adapter`` for a run trained without LoRA, or bad settings.
        TrainingClientError: a checkpoint file is missing, truncated or corrupted (named).
    """
    require_packages("training")
    model_settings = resolve_settings(settings)
    if mode not in EXPORT_MODES:
        raise ConfigurationError(f"export: mode {mode!r}; valid: {', '.join(EXPORT_MODES)}")
    if mode == "adapter" and model_settings.lora_rank == 0:
        raise ConfigurationError(
            "export --adapter: the run trained every weight (training.local_torch.lora_rank "
            "is 0), so there is no LoRA adapter; export the full weights without --adapter"
        )
    destination = Path(out).expanduser().absolute()
    base_model: str | None = None
    with atomic_directory(destination) as temporary:
        if mode == "merged":
            model = _load_sampler(Path(sampler_path))
            if model_settings.lora_rank == 0:
                _check_against_state(
                    model, Path(sampler_path), None if state_path is None else Path(state_path)
                )
            with quiet_transformers():
                model.save_pretrained(str(temporary))
        else:
            if state_path is None:
                raise TrainingClientError(
                    "export --adapter: the checkpoint has no training state to take the "
                    "LoRA adapters from; export merged weights instead"
                )
            base_model, _ = _write_adapter(temporary, Path(state_path), model_settings, destination)
        for name, path in (tokenizer_files or {}).items():
            shutil.copyfile(path, temporary / name)
        if eos_token_ids:
            _write_generation_config(temporary, eos_token_ids)
        files = tuple(
            sorted(str(p.relative_to(temporary)) for p in temporary.rglob("*") if p.is_file())
        )
    return ExportResult(out=destination, mode=mode, files=files, base_model=base_model)
