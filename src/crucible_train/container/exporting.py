"""``crucible-train export``'s way into the engine that wrote a checkpoint (container layer).

Entry points never import adapters; this module hands an export to the adapter that knows
the checkpoint's format (today only ``local_torch`` writes exportable weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from crucible_train.adapters.local_torch.export import EXPORT_MODES, ExportResult
from crucible_train.adapters.local_torch.export import export_checkpoint as _local_torch_export
from crucible_train.errors import ConfigurationError

__all__ = ["EXPORTABLE_BACKENDS", "EXPORT_MODES", "ExportResult", "export_checkpoint"]

EXPORTABLE_BACKENDS: Final = ("local_torch",)


def export_checkpoint(
    *,
    backend: str,
    sampler_path: str | Path,
    state_path: str | Path | None,
    settings: Mapping[str, Any],
    out: Path,
    mode: Literal["merged", "adapter"],
    tokenizer_files: Mapping[str, Path],
    eos_token_ids: Sequence[int],
) -> ExportResult:
    """Export one checkpoint written by ``training.<backend>`` as a Hugging Face directory.

    See :func:`crucible_train.adapters.local_torch.export.export_checkpoint`.

    Raises:
        ConfigurationError: a backend whose checkpoints cannot be exported, or bad input.
        TrainingClientError: a checkpoint file is missing or corrupted (named).
    """
    if backend not in EXPORTABLE_BACKENDS:
        raise ConfigurationError(
            f"export: the run trained with training.backend={backend}; only "
            f"{', '.join(EXPORTABLE_BACKENDS)} checkpoints can be exported"
        )
    return _local_torch_export(
        sampler_path=sampler_path,
        state_path=state_path,
        settings=settings,
        out=out,
        mode=mode,
        tokenizer_files=tokenizer_files,
        eos_token_ids=eos_token_ids,
    )
