"""Helpers shared by the entry-point tests: SFT run directories with checkpoint records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from crucible_train.container import run_store
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord

MakeRun = Callable[[Path, str, list[CheckpointRecord]], Path]
MakeRecord = Callable[..., CheckpointRecord]


def _sft_run(root: Path, name: str, records: list[CheckpointRecord]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    log = CheckpointLog(run_store(run))
    for record in records:
        log.append(record)
    return run


def _record(step: int, *, final: bool = False) -> CheckpointRecord:
    name = "final" if final else f"{step:06d}"
    return CheckpointRecord(
        name=name, step=step, state_path=f"s/{name}", sampler_path=f"w/{name}", final=final
    )


@pytest.fixture
def sft_run() -> MakeRun:
    """``sft_run(root, name, records)``: a run directory holding those checkpoint records."""
    return _sft_run


@pytest.fixture
def checkpoint() -> MakeRecord:
    """``checkpoint(step, final=False)``: a record with state and sampler paths."""
    return _record
