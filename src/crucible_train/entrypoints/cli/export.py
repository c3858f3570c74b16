"""``crucible-train export`` (entry-point layer): a run's checkpoint as a Hugging Face directory.

``crucible-train export RUN_DIR[:STEP] --out DIR [--merge-lora | --adapter] [--force]``
takes the run's ``final`` checkpoint (or the one ``STEP`` names, see
:func:`~crucible_train.entrypoints.run_dirs.split_run_ref`) and writes ``DIR``:

* ``config.json`` and ``model.safetensors``, LoRA merged in (the default, or
  ``--merge-lora``); or, with ``--adapter`` on a LoRA run, ``adapter_config.json`` and
  ``adapter_model.safetensors`` in PEFT's layout (with ``base_model/`` beside them when the
  run's base was randomly initialised and so exists in no file);
* the run's tokenizer files when it used the ``huggingface`` tokenizer (``tokenizer.json``,
  plus ``tokenizer_config.json`` and ``special_tokens_map.json`` when its directory holds
  them); the ``byte_level`` and ``tiktoken`` tokenizers have no Hugging Face files, so
  none are written and the command says so;
* ``generation_config.json`` with the run's renderer's stop ids as ``eos_token_id``.

The run's ``config.json`` decides the backend, the model settings, the tokenizer and the
renderer. ``DIR`` is written into a temporary directory and renamed, so an interrupted
export leaves nothing half-written. The export itself runs in the adapter that wrote the
checkpoint, reached through :func:`crucible_train.container.export_checkpoint`.

Exit codes: 0 done; 2 bad input (no finished checkpoint, a non-empty ``--out`` without
``--force``, a corrupted checkpoint, ``--merge-lora``/``--adapter`` on a run without LoRA);
1 unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from crucible_train.container import container_from_config, export_checkpoint, load_config
from crucible_train.core.renderers import get_renderer
from crucible_train.entrypoints.cli._options import Commands
from crucible_train.entrypoints.planning import as_overrides
from crucible_train.entrypoints.run_dirs import (
    CONFIG_FILE,
    moved_checkpoint,
    read_json,
    run_checkpoint,
    saved_block,
    split_run_ref,
)
from crucible_train.errors import ConfigurationError

__all__ = ["add_export_parser", "run_export", "stop_token_ids", "tokenizer_files"]

HF_TOKENIZER: Final = "huggingface"
TOKENIZER_FILES: Final = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tokenizer_files(backend: str, settings: Mapping[str, Any]) -> dict[str, Path]:
    """The Hugging Face tokenizer files of a run's tokenizer (name in the export -> source).

    Only the ``huggingface`` backend has them: its ``path`` is a ``tokenizer.json`` (copied
    under that name) or a directory whose tokenizer files are copied.

    Raises:
        ConfigurationError: the tokenizer file the run used is gone.
    """
    if backend != HF_TOKENIZER or not isinstance(settings.get("path"), str):
        return {}
    path = Path(str(settings["path"]))
    directory = path if path.is_dir() else path.parent
    tokenizer = directory / TOKENIZER_FILES[0] if path.is_dir() else path
    if not tokenizer.is_file():
        raise ConfigurationError(
            f"export: the run's tokenizer {tokenizer} no longer exists; restore it, or "
            "export with tokenizer.huggingface.path pointing at it"
        )
    found = {TOKENIZER_FILES[0]: tokenizer}
    for name in TOKENIZER_FILES[1:]:
        if (directory / name).is_file():
            found[name] = directory / name
    return found


def stop_token_ids(config: Mapping[str, Any]) -> list[int]:
    """The run's renderer's stop token ids, with its tokenizer (stop strings encoded).

    A stop string that is not one token has no id and is left out.

    Raises:
        ConfigurationError: the tokenizer or renderer cannot be built.
    """
    backend, settings = saved_block(config, "tokenizer")
    updates: dict[str, Any] = {"tokenizer.backend": backend}
    updates.update({f"tokenizer.{backend}.{k}": v for k, v in settings.items()})
    container = container_from_config(load_config(None, as_overrides(updates)))
    tokenizer = container.tokenizer()
    train = config.get("train")
    renderer_name = train.get("renderer") if isinstance(train, Mapping) else None
    if not isinstance(renderer_name, str):
        raise ConfigurationError(f"export: the run's {CONFIG_FILE} names no train.renderer")
    stops = get_renderer(renderer_name, tokenizer).get_stop_sequences()
    ids: list[int] = []
    for stop in stops:
        encoded = [stop] if isinstance(stop, int) else tokenizer.encode(stop)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(int(encoded[0]))
    return ids


def _check_out(out: Path, run_dir: Path, force: bool) -> None:
    if out == run_dir or out in run_dir.parents:
        raise ConfigurationError(
            f"export --out {out}: that directory holds the run being exported; choose another"
        )
    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"export --out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigurationError(
            f"export --out {out}: the directory is not empty; choose an empty or new "
            "directory, or pass --force to replace it"
        )


def run_export(
    ref: str,
    out: str,
    *,
    mode: Literal["merged", "adapter"] = "merged",
    merge_lora: bool = False,
    force: bool = False,
    stdout: TextIO | None = None,
) -> int:
    """Export ``RUN_DIR[:STEP]`` to ``out``; prints what was written. Returns exit code 0.

    Args:
        ref: ``RUN_DIR`` or ``RUN_DIR:STEP`` (a step, a checkpoint name or ``start``).
        out: the directory to write.
        mode: ``merged`` or ``adapter`` (PEFT LoRA adapter).
        merge_lora: ``--merge-lora`` was given (refused on a run without LoRA).
        force: replace a non-empty ``out``.
        stdout: where the summary goes (default: ``sys.stdout``).

    Raises:
        ConfigurationError: see the module docstring.
        TrainingClientError: a checkpoint file is missing or corrupted (named).
    """
    stream = stdout or sys.stdout
    path, which = split_run_ref(ref)
    run_dir = path.expanduser().absolute()
    what = f"export {ref}"
    start = run_checkpoint(run_dir, which, what=what)
    # The run that saved the checkpoint (for `:start`, the earlier run) knows its format.
    record, saved_by = start.record, start.run_dir
    config = read_json(saved_by / CONFIG_FILE)
    backend, settings = saved_block(config, "training")
    lora = int(settings.get("lora_rank") or 0) > 0
    if merge_lora and not lora:
        raise ConfigurationError(
            f"{what} --merge-lora: the run trained without LoRA (training.{backend}.lora_rank "
            "is 0); its weights are already plain, so export without --merge-lora"
        )
    destination = Path(out).expanduser().absolute()
    for protected in (run_dir, saved_by):
        _check_out(destination, protected, force)
    sampler = moved_checkpoint(str(record.sampler_path), saved_by)
    state = record.state_path and moved_checkpoint(str(record.state_path), saved_by)
    tokenizer_backend, tokenizer_settings = saved_block(config, "tokenizer")
    files = tokenizer_files(tokenizer_backend, tokenizer_settings)
    eos = stop_token_ids(config)
    result = export_checkpoint(
        backend=backend,
        sampler_path=sampler,
        state_path=state,
        settings=settings,
        out=destination,
        mode=mode,
        tokenizer_files=files,
        eos_token_ids=eos,
    )
    print(
        f"exported {saved_by}: checkpoint {record.name!r} (step {record.step}) as "
        f"{'a PEFT LoRA adapter' if mode == 'adapter' else 'merged weights'} to {result.out}",
        file=stream,
    )
    print(f"  files: {', '.join(result.files)}", file=stream)
    if result.base_model is not None:
        print(f"  base model: {result.base_model}", file=stream)
    if not files:
        print(
            f"  tokenizer: {tokenizer_backend} has no Hugging Face tokenizer files; none "
            f"written (token ids are the run's {tokenizer_backend} ids)",
            file=stream,
        )
    print(f"  eos_token_id (renderer stop ids): {eos}", file=stream)
    return 0


def _handle(args: argparse.Namespace) -> int:
    return run_export(
        args.run,
        args.out,
        mode="adapter" if args.adapter else "merged",
        merge_lora=args.merge_lora,
        force=args.force,
    )


def add_export_parser(commands: Commands, debug: argparse.ArgumentParser) -> None:
    """Add ``export`` to the command's subparsers."""
    parser = commands.add_parser(
        "export",
        help="write a run's checkpoint as a Hugging Face model directory",
        description="Write RUN_DIR's final checkpoint (or RUN_DIR:STEP's) as a directory "
        "that transformers' AutoModelForCausalLM.from_pretrained loads: config, safetensors "
        "weights, the run's tokenizer files, and generation_config.json with the renderer's "
        "stop ids. LoRA runs export merged weights (default) or a PEFT adapter (--adapter).",
        parents=[debug],
    )
    parser.add_argument("run", metavar="RUN_DIR[:STEP]", help="a run directory (and step)")
    parser.add_argument("--out", metavar="DIR", required=True, help="the directory to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--merge-lora",
        action="store_true",
        help="LoRA runs: merge the adapters into the weights (the default)",
    )
    which.add_argument(
        "--adapter",
        action="store_true",
        help="LoRA runs: write a PEFT adapter directory instead of merged weights",
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(handler=_handle)
