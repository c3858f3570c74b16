"""Run directories of ``crucible-train train``: naming, finding, and what a run left.

A run directory is ``<train.runs_root>/<recipe>-<UTC YYYYmmdd-HHMMSS>`` (``-2``, ``-3``...
when taken), so the names sort by time. This module reads run directories (their
``config.json``, ``started_from.json`` and checkpoint records) for the planning in
:mod:`crucible_train.entrypoints.planning`; it writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from crucible_train.container import run_store
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.errors import ConfigurationError

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "STARTED_FROM_FILE",
    "SftStart",
    "StartChoice",
    "find_sft_start",
    "latest_run",
    "new_run_dir",
    "parse_run_spec",
    "read_json",
    "run_checkpoint",
]

CONFIG_FILE = "config.json"
STARTED_FROM_FILE = "started_from.json"
CHECKPOINTS_DIR = "checkpoints"
SFT = "sft"


def new_run_dir(runs_root: Path, recipe: str, now: datetime | None = None) -> Path:
    """``<runs_root>/<recipe>-<UTC YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... if taken."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    candidate = runs_root / f"{recipe}-{stamp}"
    number = 2
    while candidate.exists():
        candidate = runs_root / f"{recipe}-{stamp}-{number}"
        number += 1
    return candidate


def _runs_of(runs_root: Path, recipe: str) -> list[Path]:
    """Run directories of ``recipe``, newest first (the timestamped names sort by time)."""
    if not runs_root.is_dir():
        return []
    runs = [p for p in runs_root.glob(f"{recipe}-*") if p.is_dir()]

    def key(path: Path) -> tuple[str, int]:
        # "<date>-<time>" or "<date>-<time>-<n>": by the stamp, then the suffix.
        parts = path.name[len(recipe) + 1 :].split("-")
        suffix = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 1
        return "-".join(parts[:2]), suffix

    return sorted(runs, key=key, reverse=True)


def latest_run(runs_root: Path, recipe: str) -> Path | None:
    """The newest ``<runs_root>/<recipe>-*`` run directory, or ``None``."""
    runs = _runs_of(runs_root, recipe)
    return runs[0] if runs else None


@attrs.frozen(kw_only=True)
class SftStart:
    """The SFT checkpoint a later recipe starts from.

    Attributes:
        run_dir: the SFT run directory.
        record: the checkpoint record (its ``sampler_path`` holds the weights).
    """

    run_dir: Path
    record: CheckpointRecord

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``started_from.json``)."""
        return {"run_dir": str(self.run_dir), "record": self.record.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SftStart:
        """Parse :meth:`to_dict`'s output."""
        return cls(
            run_dir=Path(str(data["run_dir"])),
            record=CheckpointRecord.from_dict(data["record"], STARTED_FROM_FILE),
        )


@attrs.frozen(kw_only=True)
class StartChoice:
    """Where the weights (or, for ``distill``, the teacher) of a run start.

    Attributes:
        started_from: the checkpoint chosen (an SFT run's; a distill teacher may be any
            run's), or ``None`` (a configured path, a new model, or a resumed run that
            started without one).
        role: ``weights`` (``rl``, ``dpo``) or ``teacher`` (``distill``).
        updates: dotted configuration keys the plan sets, e.g.
            ``{"training.local_torch.model_path": "/runs/sft-.../final"}``.
    """

    started_from: SftStart | None = None
    role: str = "weights"
    updates: Mapping[str, Any] = attrs.field(factory=dict)


def _listing(records: list[CheckpointRecord]) -> str:
    return ", ".join(f"{r.name!r} (step {r.step})" for r in records) or "none"


def find_sft_start(runs_root: Path, start_from_step: int | None = None) -> SftStart | None:
    """The latest finished SFT run's checkpoint to start from, or ``None`` (no finished run).

    Args:
        runs_root: holds the ``sft-*`` run directories.
        start_from_step: take that run's record at this step instead of ``final``.

    Raises:
        ConfigurationError: the latest finished run has no checkpoint with weights at
            ``start_from_step`` (the message lists the steps it has).
    """
    for run in _runs_of(runs_root, SFT):
        records = CheckpointLog(run_store(run)).records()
        final = [r for r in records if r.final and r.sampler_path is not None]
        if not final:
            continue  # unfinished or interrupted: not a starting point
        if start_from_step is None:
            return SftStart(run_dir=run, record=final[-1])
        usable = [r for r in records if r.sampler_path is not None]
        found = _at_step(usable, start_from_step)
        if found is not None:
            return SftStart(run_dir=run, record=found)
        steps = ", ".join(str(r.step) for r in usable)
        raise ConfigurationError(
            f"start_from_step: the latest finished SFT run {run} has no checkpoint with "
            f"weights at step {start_from_step}; it has steps {steps}"
        )
    return None


def _at_step(usable: list[CheckpointRecord], step: int) -> CheckpointRecord | None:
    """The latest record at ``step`` (a resumed run may have written it twice)."""
    for record in reversed(usable):
        if record.step == step:
            return record
    return None


def parse_run_spec(spec: str) -> tuple[Path, int | None]:
    """``RUN_DIR`` or ``RUN_DIR:STEP`` as the directory and the step (``None``: final).

    Raises:
        ConfigurationError: the directory part is empty.
    """
    path, sep, tail = spec.rpartition(":")
    if not (sep and tail.isdigit()):
        path, tail = spec, ""
    if not path.strip():
        raise ConfigurationError(f"{spec!r}: expected RUN_DIR or RUN_DIR:STEP")
    return Path(path), int(tail) if tail else None


def run_checkpoint(run_dir: Path, step: int | None, *, what: str) -> SftStart:
    """The checkpoint with weights of any run directory: ``final``, or the one at ``step``.

    Args:
        run_dir: a directory ``crucible-train train`` wrote (any recipe).
        step: the checkpoint's step; ``None`` takes the ``final`` checkpoint.
        what: names the setting in messages (``train.distill.teacher``).

    Raises:
        ConfigurationError: ``run_dir`` is not a run directory, has no finished
            checkpoint, or none with weights at ``step`` (the message lists those it has).
    """
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigurationError(
            f"{what}: {run_dir} is not a run directory ({CONFIG_FILE} missing); name a "
            "directory that `crucible-train train` wrote"
        )
    usable = [r for r in CheckpointLog(run_store(run_dir)).records() if r.sampler_path]
    if step is None:
        final = [r for r in usable if r.final]
        if final:
            return SftStart(run_dir=run_dir, record=final[-1])
        raise ConfigurationError(
            f"{what}: {run_dir} has no finished checkpoint ('final'); its checkpoints with "
            f"weights: {_listing(usable)}; name one as {run_dir}:STEP, or finish the run "
            "with --resume"
        )
    found = _at_step(usable, step)
    if found is None:
        raise ConfigurationError(
            f"{what}: {run_dir} has no checkpoint with weights at step {step}; its "
            f"checkpoints with weights: {_listing(usable)}"
        )
    return SftStart(run_dir=run_dir, record=found)


def read_json(path: Path) -> Any:
    """A run file's JSON content.

    Raises:
        ConfigurationError: the file is missing or not JSON (the message names it).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not JSON ({exc.msg})") from None
