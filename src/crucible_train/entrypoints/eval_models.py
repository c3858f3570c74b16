"""What ``crucible-train eval --model`` and ``--model-path`` sample from, and how.

``--model RUN_DIR[:WHICH]`` names a checkpoint of a ``crucible-train train`` run: its
``final`` checkpoint, or ``WHICH`` = a step (``RUN_DIR:40``), a checkpoint name
(``RUN_DIR:000040``) or ``start``, the checkpoint the run started from
(``started_from.json``: the SFT checkpoint an RL, DPO or distillation run began with). The
run's ``config.json`` decides how it is sampled: the backend it trained on (its
``training.<backend>`` settings become ``sampling.<backend>``'s, with ``model_path`` the
checkpoint's sampler weights: a local directory or a ``tinker://`` path), its tokenizer
and its ``train.renderer``. ``--model-path DIR`` samples a plain Hugging Face model
directory with the ``local_torch`` sampler and the configured tokenizer and renderer.

Either becomes an :class:`EvalModel`: configuration updates that the eval command layers
under the user's own ``key=value`` overrides, and an identity for the results file's run
fingerprint (so ``--resume`` refuses another model).
:mod:`crucible_train.entrypoints.eval_generation` samples it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from crucible_train.entrypoints.run_dirs import (
    CONFIG_FILE,
    LOCAL_TORCH,
    NOOP,
    START,
    moved_checkpoint,
    read_json,
    run_checkpoint,
    saved_block,
    split_run_ref,
)
from crucible_train.errors import ConfigurationError

__all__ = [
    "START",
    "EvalModel",
    "choose_model",
    "model_from_directory",
    "model_from_run",
]


@attrs.frozen(kw_only=True)
class EvalModel:
    """A model ``eval`` samples from.

    Attributes:
        label: what is sampled, for the user (``runs/rl-...: checkpoint 'final' (step 40)``).
        updates: dotted configuration keys that select and configure it
            (``sampling.backend``, ``sampling.<backend>.model_path``, the tokenizer,
            ``train.renderer``), applied under the command's ``key=value`` overrides.
        identity: JSON-safe description for the results file's run fingerprint.
    """

    label: str
    updates: Mapping[str, Any]
    identity: Mapping[str, Any]


def model_from_run(ref: str) -> EvalModel:
    """The checkpoint ``RUN_DIR[:WHICH]`` names, sampled as its run was configured.

    Raises:
        ConfigurationError: not a directory, not a run (no ``config.json``), no finished
            checkpoint (the message lists the checkpoints it has), no checkpoint at
            ``WHICH`` (the message lists the valid steps), or a run trained without
            weights (``training.backend: noop``).
    """
    path, which = split_run_ref(ref)
    run_dir = Path(path).expanduser().absolute()
    if not run_dir.is_dir():
        raise ConfigurationError(f"--model {ref}: {run_dir} is not a directory")
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigurationError(
            f"--model {ref}: {run_dir} is not a run directory ({CONFIG_FILE} missing); give "
            "a directory that `crucible-train train` wrote (runs/<recipe>-<time>), or "
            "--model-path DIR for a Hugging Face model directory"
        )
    config = read_json(run_dir / CONFIG_FILE)
    backend, settings = saved_block(config, "training")
    if backend == NOOP:
        raise ConfigurationError(
            f"--model {ref}: the run trained with training.backend={backend}, which saves "
            "no weights to sample"
        )
    start = run_checkpoint(run_dir, which, what=f"--model {ref}")
    record, saved_by = start.record, start.run_dir
    sampler_path = str(record.sampler_path)
    if backend == LOCAL_TORCH:
        sampler_path = moved_checkpoint(sampler_path, saved_by)
        settings["lora_rank"] = 0  # sampler weights are saved with LoRA merged in
    settings["model_path"] = sampler_path
    where = str(run_dir) if saved_by == run_dir else f"{saved_by}, where {run_dir.name} started"
    updates: dict[str, Any] = {"sampling.backend": backend}
    updates.update({f"sampling.{backend}.{k}": v for k, v in settings.items()})
    tokenizer, tokenizer_settings = saved_block(config, "tokenizer")
    updates["tokenizer.backend"] = tokenizer
    updates.update({f"tokenizer.{tokenizer}.{k}": v for k, v in tokenizer_settings.items()})
    train = config.get("train")
    renderer = train.get("renderer") if isinstance(train, Mapping) else None
    if isinstance(renderer, str):
        updates["train.renderer"] = renderer
    return EvalModel(
        label=f"{where}: checkpoint {record.name!r} (step {record.step}, {backend})",
        updates=updates,
        identity={
            "run_dir": str(run_dir),
            "checkpoint": record.name,
            "step": record.step,
            "sampler_path": sampler_path,
        },
    )


def model_from_directory(path: str, renderer: str | None = None) -> EvalModel:
    """A local Hugging Face model directory, sampled by ``local_torch``.

    Args:
        path: the model directory.
        renderer: its chat format (``train.renderer``); ``None`` keeps the configured one.

    Raises:
        ConfigurationError: the path is not a directory with a ``config.json``.
    """
    directory = Path(path).expanduser().absolute()
    if not (directory / "config.json").is_file():
        what = "has no config.json" if directory.is_dir() else "is not a directory"
        raise ConfigurationError(
            f"--model-path {path}: {directory} {what}; give a Hugging Face model directory "
            "(save_pretrained layout), or --model RUN_DIR for a training run"
        )
    updates: dict[str, Any] = {
        "sampling.backend": LOCAL_TORCH,
        f"sampling.{LOCAL_TORCH}.model_path": str(directory),
    }
    if renderer is not None:
        updates["train.renderer"] = renderer
    return EvalModel(
        label=f"{directory} (local_torch)", updates=updates, identity={"model_path": str(directory)}
    )


def choose_model(
    *, model: str | None, model_path: str | None, renderer: str | None = None
) -> EvalModel | None:
    """The model ``--model`` or ``--model-path`` names, or ``None`` (neither given).

    Raises:
        ConfigurationError: see :func:`model_from_run` and :func:`model_from_directory`.
    """
    if model is not None:
        return model_from_run(model)
    if model_path is not None:
        return model_from_directory(model_path, renderer)
    return None
