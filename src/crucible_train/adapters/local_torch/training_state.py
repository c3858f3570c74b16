"""The local PyTorch engine's training state: the directory ``save_state`` writes.

A state is a directory of safetensors files plus ``manifest.json``:

* ``weights.safetensors``: the trainable weights (all of them when fully fine-tuning, the
  LoRA adapters otherwise), by parameter name;
* ``optimizer.safetensors``: AdamW's state tensors, as ``"<parameter>::<state key>"``;
* ``rng.safetensors``: torch's CPU RNG state (``torch_cpu``) and, on CUDA, every device's
  (``torch_cuda_<index>``);
* ``manifest.json``: :data:`STATE_FORMAT`, :data:`STATE_FORMAT_VERSION`, the model
  fingerprint, the step, whether LoRA or full weights were trained, the base model, and the
  SHA-256 and size of every file.

The directory is written atomically. :func:`read_training_state` checks everything
(format, fingerprint, checksums, names and shapes) before anything is applied, so a bad
state leaves the client as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from crucible_train.adapters.local_torch._files import atomic_directory, sha256_file
from crucible_train.errors import ConfigurationError, TrainingClientError

if TYPE_CHECKING:
    import torch

__all__ = [
    "STATE_FORMAT",
    "STATE_FORMAT_VERSION",
    "TrainingState",
    "read_training_state",
    "restore_parameters",
    "restore_rng",
    "save_training_state",
    "verified_state_file",
]

STATE_FORMAT: Final = "crucible-train/local_torch-training-state"
"""The ``format`` of a training state's ``manifest.json``."""

STATE_FORMAT_VERSION: Final = 1
"""The manifest ``format_version`` this code writes and reads."""

_WEIGHTS: Final = "weights.safetensors"
_OPTIMIZER: Final = "optimizer.safetensors"
_RNG: Final = "rng.safetensors"
_MANIFEST: Final = "manifest.json"
_STATE_KEY_SEPARATOR: Final = "::"  # optimizer tensors are stored as "<param>::<state key>"


@attrs.frozen(kw_only=True)
class TrainingState:
    """A training state read and checked by :func:`read_training_state`, not yet applied."""

    weights: dict[str, torch.Tensor]  # trainable parameter name -> weight (on the CPU)
    optimizer: dict[str, dict[str, torch.Tensor]]  # parameter name -> its AdamW state
    rng: dict[str, torch.Tensor]  # "torch_cpu" and "torch_cuda_<index>" -> RNG state
    step: int  # optimizer steps taken when it was saved


def save_training_state(
    destination: Path,
    *,
    trainable: Sequence[tuple[str, torch.nn.Parameter]],
    adamw: torch.optim.Optimizer,
    device: torch.device,
    fingerprint: Mapping[str, Any],
    step: int,
    lora: bool,
    base_model: str | None,
) -> None:
    """Write a client's training state to ``destination``, replacing it atomically.

    Args:
        destination: the state's directory.
        trainable: the trained parameters with their names.
        adamw: the client's optimizer (its state tensors are saved).
        device: where the model lives (on CUDA, the CUDA RNG states are saved too).
        fingerprint: the model's fingerprint, checked by :func:`read_training_state`.
        step: optimizer steps taken.
        lora: whether only LoRA adapters are trained.
        base_model: the ``model_path`` the model was loaded from, if any.
    """
    import torch
    from safetensors.torch import save_file

    weights = {name: parameter.detach().cpu().contiguous() for name, parameter in trainable}
    optimizer: dict[str, torch.Tensor] = {}
    for name, parameter in trainable:
        for key, value in adamw.state.get(parameter, {}).items():
            if isinstance(value, torch.Tensor):
                optimizer[f"{name}{_STATE_KEY_SEPARATOR}{key}"] = value.detach().cpu()
    rng = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"torch_cuda_{index}"] = state
    with atomic_directory(destination) as temporary:
        files: dict[str, dict[str, Any]] = {}
        for file_name, tensors in ((_WEIGHTS, weights), (_OPTIMIZER, optimizer), (_RNG, rng)):
            path = temporary / file_name
            save_file(tensors, str(path))
            files[file_name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        manifest = {
            "format": STATE_FORMAT,
            "format_version": STATE_FORMAT_VERSION,
            "fingerprint": fingerprint,
            "step": step,
            "trainable": "lora" if lora else "full",
            "base_model": base_model,
            "files": files,
        }
        (temporary / _MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )


def read_training_state(
    path: Any,
    *,
    expected: Mapping[str, torch.nn.Parameter],
    fingerprint: Mapping[str, Any],
) -> TrainingState:
    """Read and check the state at ``path`` for a client; nothing is applied yet.

    Args:
        path: the state's directory (as given to ``load_state``).
        expected: the client's trainable parameters by name.
        fingerprint: the client's model fingerprint.

    Raises:
        ConfigurationError: ``path`` holds no state, or a state of a different model
            (naming each difference, e.g. ``hidden_size 128 vs 256``).
        TrainingClientError: a file is missing, truncated or corrupted (SHA-256 mismatch).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not isinstance(path, str | Path) or not str(path).strip():
        raise ConfigurationError(f"load_state: path must be a directory path, got {path!r}")
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ConfigurationError(
            f"load_state: no training state at {str(directory)!r} (not a directory)"
        )
    manifest = _read_manifest(directory)
    differences = _differences(manifest["fingerprint"], fingerprint)
    if differences:
        raise ConfigurationError(
            f"load_state: the state at {str(directory)!r} belongs to a different model "
            f"(checkpoint vs this client): {'; '.join(differences)}"
        )
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for file_name in (_WEIGHTS, _OPTIMIZER, _RNG):
        file_path = _verified_file(directory, manifest, file_name)
        try:
            tensors[file_name] = load_file(str(file_path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise TrainingClientError(f"load_state: {file_path} cannot be read: {exc}") from exc
    weights = tensors[_WEIGHTS]
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ConfigurationError(
            f"load_state: the state's weights do not match this model: missing "
            f"{missing[:3] or 'none'}, unexpected {unexpected[:3] or 'none'}"
        )
    for name, parameter in expected.items():
        if tuple(weights[name].shape) != tuple(parameter.shape):
            raise ConfigurationError(
                f"load_state: weight {name} has shape {list(weights[name].shape)} in the "
                f"state but {list(parameter.shape)} in this model"
            )
    optimizer_state: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors[_OPTIMIZER].items():
        name, _, state_key = key.rpartition(_STATE_KEY_SEPARATOR)
        if name not in expected or not state_key:
            raise TrainingClientError(
                f"load_state: optimizer tensor {key!r} names no trainable weight"
            )
        optimizer_state.setdefault(name, {})[state_key] = value
    return TrainingState(
        weights=weights,
        optimizer=optimizer_state,
        rng=tensors[_RNG],
        step=int(manifest["step"]),
    )


def restore_parameters(
    state: TrainingState,
    *,
    expected: Mapping[str, torch.nn.Parameter],
    adamw: torch.optim.Optimizer,
) -> None:
    """Copy a checked state's weights into the parameters and replace AdamW's state.

    Pending gradients are cleared.
    """
    import torch

    with torch.no_grad():
        for name, parameter in expected.items():
            parameter.copy_(state.weights[name])
    adamw.zero_grad(set_to_none=True)
    adamw.state.clear()
    for name, saved in state.optimizer.items():
        parameter = expected[name]
        adamw.state[parameter] = {
            # AdamW keeps its step count on the CPU unless capturable/fused.
            key: value if key == "step" else value.to(parameter.device)
            for key, value in saved.items()
        }


def restore_rng(rng: Mapping[str, torch.Tensor], device: torch.device) -> None:
    """Set torch's CPU RNG (and on CUDA, every device's) to a checked state's."""
    import torch

    torch.set_rng_state(rng["torch_cpu"])
    if device.type == "cuda":
        cuda_states = [rng[key] for key in sorted(rng) if key.startswith("torch_cuda_")]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)


def verified_state_file(directory: Path, file_name: str, *, what: str = "load_state") -> Path:
    """The path of one file of the training state at ``directory``, its checksum checked.

    Args:
        directory: a state directory :func:`save_training_state` wrote.
        file_name: e.g. ``weights.safetensors``.
        what: the command named at the start of messages (``export``).

    Raises:
        ConfigurationError: ``directory`` holds no local_torch training state.
        TrainingClientError: the file is missing, truncated or corrupted (named).
    """
    return _verified_file(directory, _read_manifest(directory, what), file_name, what)


# --- reading helpers ------------------------------------------------------------------


def _read_manifest(directory: Path, what: str = "load_state") -> dict[str, Any]:
    path = directory / _MANIFEST
    if not path.is_file():
        raise ConfigurationError(
            f"{what}: {str(directory)!r} is not a local_torch training state "
            f"({_MANIFEST} is missing)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrainingClientError(f"{what}: {path} is corrupted: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != STATE_FORMAT:
        raise ConfigurationError(f"{what}: {path} is not a local_torch training state manifest")
    version = manifest.get("format_version")
    if version != STATE_FORMAT_VERSION:
        raise ConfigurationError(
            f"{what}: {path} has format_version {version!r}; this crucible-train reads "
            f"version {STATE_FORMAT_VERSION}"
        )
    if (
        not isinstance(manifest.get("fingerprint"), dict)
        or not isinstance(manifest.get("files"), dict)
        or isinstance(manifest.get("step"), bool)
        or not isinstance(manifest.get("step"), int)
    ):
        raise TrainingClientError(f"{what}: {path} is malformed (fingerprint, files, step)")
    return manifest


def _differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"hidden_size 128 vs 256"`` for every fingerprint entry that differs."""
    return [
        f"{key} {saved.get(key)!r} vs {current.get(key)!r}".replace("'", "")
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    ]


def _verified_file(
    directory: Path, manifest: Mapping[str, Any], file_name: str, what: str = "load_state"
) -> Path:
    entry = manifest["files"].get(file_name)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise TrainingClientError(
            f"{what}: {directory / _MANIFEST} lists no checksum for {file_name}"
        )
    path = directory / file_name
    if not path.is_file():
        raise TrainingClientError(f"{what}: the state is incomplete: {path} is missing")
    size = path.stat().st_size
    if isinstance(entry.get("bytes"), int) and size != entry["bytes"]:
        raise TrainingClientError(
            f"{what}: {path} is truncated or corrupted: {size} bytes, the manifest "
            f"says {entry['bytes']}"
        )
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise TrainingClientError(
            f"{what}: {path} is corrupted: its sha256 {actual[:16]}... does not match "
            f"the manifest's {entry['sha256'][:16]}..."
        )
    return path
