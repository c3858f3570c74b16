"""Run directories of ``crucible-train train``: naming, finding, and what a run left.

A run directory is ``<train.runs_root>/<recipe>-<UTC YYYYmmdd-HHMMSS>`` (``-2``, ``-3``...
when taken), so the names sort by time. This module reads run directories (their
``config.json``, ``started_from.json`` and checkpoint records) for the planning in
:mod:`crucible_train.entrypoints.planning`; it writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from crucible_train.container import run_store
from crucible_train.core.config_dump import REDACTED
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.errors import ConfigurationError

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "LOCAL_TORCH",
    "NOOP",
    "START",
    "STARTED_FROM_FILE",
    "SftStart",
    "StartChoice",
    "find_sft_start",
    "latest_run",
    "moved_checkpoint",
    "new_run_dir",
    "read_json",
    "run_checkpoint",
    "saved_block",
    "split_run_ref",
]

CONFIG_FILE = "config.json"
STARTED_FROM_FILE = "started_from.json"
CHECKPOINTS_DIR = "checkpoints"
SFT = "sft"
LOCAL_TORCH = "local_torch"
NOOP = "noop"


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


START = "start"
"""``RUN_DIR:start``: the checkpoint the run started from (its ``started_from.json``)."""


def split_run_ref(ref: str) -> tuple[Path, str | None]:
    """``RUN_DIR[:WHICH]`` as the directory and ``WHICH`` (``None``: the final checkpoint).

    ``WHICH`` is a step (``40``), a checkpoint name (``000040``, ``final``) or
    :data:`START`. A path that exists as a directory is taken whole (a directory name may
    hold a colon); otherwise the text after the last colon is ``WHICH`` when it holds no
    path separator.

    Raises:
        ConfigurationError: the directory part is empty.
    """
    path, which = ref, None
    if ":" in ref and not Path(ref).is_dir():
        head, _, tail = ref.rpartition(":")
        if tail and "/" not in tail and "\\" not in tail:
            path, which = head, tail
    if not path.strip():
        raise ConfigurationError(f"{ref!r}: expected RUN_DIR or RUN_DIR:STEP")
    return Path(path), which


def _describe(records: Sequence[CheckpointRecord]) -> str:
    parts = []
    for record in records:
        what = "weights" if record.sampler_path is not None else "training state only"
        final = ", final" if record.final else ""
        parts.append(f"{record.name!r} (step {record.step}, {what}{final})")
    return ", ".join(parts) or "none"


def run_checkpoint(run_dir: Path, which: str | None, *, what: str) -> SftStart:
    """The checkpoint with weights that ``which`` names in any run directory.

    Args:
        run_dir: a directory ``crucible-train train`` wrote (any recipe).
        which: ``None`` (the ``final`` checkpoint), a step, a checkpoint name, or
            :data:`START` (the checkpoint the run started from, in another run).
        what: names the setting in messages (``train.distill.teacher``, ``--model X``).

    Raises:
        ConfigurationError: ``run_dir`` is not a run directory, has no finished
            checkpoint (the message lists the checkpoints it has), none with weights at
            ``which`` (the message lists the valid steps), or ``start`` on a run that
            started from none.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigurationError(
            f"{what}: {run_dir} is not a run directory ({CONFIG_FILE} missing); name a "
            "directory that `crucible-train train` wrote (runs/<recipe>-<time>)"
        )
    if which == START:
        saved = run_dir / STARTED_FROM_FILE
        if not saved.is_file():
            raise ConfigurationError(
                f"{what}: {run_dir} did not start from a checkpoint ({STARTED_FROM_FILE} "
                "missing); give a step or checkpoint name instead"
            )
        return SftStart.from_dict(read_json(saved))
    records = CheckpointLog(run_store(run_dir)).records()
    usable = [r for r in records if r.sampler_path is not None]
    if which is None:
        final = [r for r in usable if r.final]
        if final:
            return SftStart(run_dir=run_dir, record=final[-1])
        raise ConfigurationError(
            f"{what}: {run_dir} has no finished checkpoint (the run was interrupted or is "
            f"still running). Its checkpoints: {_describe(records)}. Name one with weights "
            f"as {run_dir}:STEP, or finish the run with "
            f"`crucible-train train RECIPE --run-dir {run_dir} --resume`"
        )
    if which.isdigit():
        found = _at_step(usable, int(which))
    else:
        found = next((r for r in reversed(usable) if r.name == which), None)
    if found is not None:
        return SftStart(run_dir=run_dir, record=found)
    valid = ", ".join(f"{r.step} ({r.name!r})" for r in usable) or "none"
    kind = "step" if which.isdigit() else "name"
    raise ConfigurationError(
        f"{what}: {run_dir} has no checkpoint with weights at {kind} {which}; valid "
        f"steps: {valid} (or {START}); all checkpoints: {_describe(records)}"
    )


def saved_block(config: Mapping[str, Any], port: str) -> tuple[str, dict[str, Any]]:
    """A saved config's backend for ``port`` and its settings (redacted secrets left out)."""
    section = config.get(port)
    if not isinstance(section, Mapping) or not isinstance(section.get("backend"), str):
        return NOOP, {}
    backend = str(section["backend"])
    settings = section.get(backend)
    if not isinstance(settings, Mapping):
        return backend, {}
    # A secret is never in config.json; the environment supplies it again.
    return backend, {k: v for k, v in settings.items() if v != REDACTED}


def moved_checkpoint(path: str, run_dir: Path) -> str:
    """A local checkpoint path, found again inside ``run_dir`` if the run was moved.

    Records hold absolute paths; a run directory copied elsewhere keeps its checkpoints in
    ``RUN_DIR/checkpoints/``.
    """
    recorded = Path(path)
    moved = run_dir / CHECKPOINTS_DIR / recorded.name
    if not recorded.exists() and moved.is_dir():
        return str(moved)
    return path


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
