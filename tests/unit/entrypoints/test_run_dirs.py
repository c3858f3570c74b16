"""Run directories of ``train``: naming, the latest run, the SFT run to start from, any
run's checkpoint by ``RUN_DIR[:STEP]``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crucible_train.core.training.checkpoints import CheckpointRecord
from crucible_train.entrypoints.run_dirs import (
    find_sft_start,
    latest_run,
    new_run_dir,
    run_checkpoint,
    split_run_ref,
)
from crucible_train.errors import ConfigurationError


def test_new_run_dir_is_recipe_and_utc_timestamp(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = new_run_dir(tmp_path, "sft", now)
    assert first == tmp_path / "sft-20260102-030405"
    first.mkdir()
    assert new_run_dir(tmp_path, "sft", now) == tmp_path / "sft-20260102-030405-2"


def test_latest_run_sorts_by_timestamp_then_suffix(tmp_path: Path) -> None:
    assert latest_run(tmp_path / "missing", "sft") is None
    for name in ["sft-20260101-000000", "sft-20260102-000000", "sft-20260102-000000-2"]:
        (tmp_path / name).mkdir()
    (tmp_path / "rl-20270101-000000").mkdir()
    assert latest_run(tmp_path, "sft") == tmp_path / "sft-20260102-000000-2"
    assert latest_run(tmp_path, "rl") == tmp_path / "rl-20270101-000000"
    assert latest_run(tmp_path, "dpo") is None


def test_latest_finished_sft_run_is_the_start(tmp_path: Path, sft_run, checkpoint) -> None:
    assert find_sft_start(tmp_path) is None
    done = sft_run(tmp_path, "sft-20260101-000000", [checkpoint(2), checkpoint(4, final=True)])
    # Newer, but interrupted: not a starting point.
    sft_run(
        tmp_path,
        "sft-20260102-000000",
        [checkpoint(2), CheckpointRecord(name="interrupted-000003", step=3, state_path="s/i")],
    )
    start = find_sft_start(tmp_path)
    assert start is not None
    assert start.run_dir == done
    assert start.record.final
    assert start.record.sampler_path == "w/final"
    at_two = find_sft_start(tmp_path, start_from_step=2)
    assert at_two is not None
    assert at_two.record.sampler_path == "w/000002"
    with pytest.raises(ConfigurationError, match="no checkpoint with weights at step 3; it has"):
        find_sft_start(tmp_path, start_from_step=3)


def test_split_run_ref_takes_a_step_or_name_after_the_last_colon(tmp_path: Path) -> None:
    assert split_run_ref("runs/rl-1") == (Path("runs/rl-1"), None)
    assert split_run_ref("runs/rl-1:40") == (Path("runs/rl-1"), "40")
    assert split_run_ref("runs/rl-1:start") == (Path("runs/rl-1"), "start")
    assert split_run_ref("a:b/c") == (Path("a:b/c"), None)  # a path, not a step
    odd = tmp_path / "odd:40"
    odd.mkdir()
    assert split_run_ref(str(odd)) == (odd, None)  # an existing directory wins


def test_a_run_ref_needs_a_directory() -> None:
    with pytest.raises(ConfigurationError, match="expected RUN_DIR or RUN_DIR:STEP"):
        split_run_ref(":3")


def test_a_runs_checkpoint_is_its_final_one_or_the_one_at_a_step(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    run = sft_run(tmp_path, "rl-1", [checkpoint(2), checkpoint(4, final=True)])
    (run / "config.json").write_text("{}")
    assert run_checkpoint(run, None, what="x").record.name == "final"
    assert run_checkpoint(run, "2", what="x").record.name == "000002"
    with pytest.raises(ConfigurationError) as info:
        run_checkpoint(run, "3", what="--model")
    assert str(info.value) == (
        f"--model: {run} has no checkpoint with weights at step 3; valid steps: "
        "2 ('000002'), 4 ('final') (or start); all checkpoints: '000002' (step 2, weights), "
        "'final' (step 4, weights, final)"
    )
