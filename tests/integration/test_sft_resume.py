"""SIGKILL at any moment + ``--resume`` ends bit-identical to an uninterrupted run.

The tiny job of ``sft_driver.py`` runs in subprocesses on the local engine (float32,
CPU): once uninterrupted, and once killed with SIGKILL after the 1st, 2nd and 3rd
checkpoint records appear and at a random moment, each time started again with
``resume=True`` until it finishes. Final weights and optimiser state must match byte for
byte, and ``metrics.jsonl`` row for row once time-based keys are removed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = [pytest.mark.torch, pytest.mark.slow]

DRIVER = Path(__file__).with_name("sft_driver.py")
TIMEOUT = 600.0  # a ceiling for a loaded machine; a run takes seconds


def _start(run_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "checkpoints.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _finished(run_dir: Path) -> bool:
    records = _records(run_dir)
    return bool(records) and bool(records[-1].get("final"))


def _run_to_end(run_dir: Path) -> None:
    process = _start(run_dir)
    _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err.decode()
    assert _finished(run_dir)


def _kill_when(run_dir: Path, done: Any) -> bool:
    """Start the driver and SIGKILL it as soon as ``done()``; False if it finished first."""
    process = _start(run_dir)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not done():
            if process.poll() is not None:
                _, err = process.communicate()
                assert process.returncode == 0, err.decode()
                return False
            assert time.monotonic() < deadline, "driver timed out"
            time.sleep(0.005)
        return True
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.communicate()


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in row.items() if k != "train/tokens_per_s" and not k.startswith("time/")}
        for row in rows
    ]


def _final_bytes(run_dir: Path) -> dict[str, bytes]:
    final = _records(run_dir)[-1]
    out: dict[str, bytes] = {}
    for key in ("state_path", "sampler_path"):
        folder = Path(final[key])
        for path in sorted(folder.glob("*.safetensors")):
            # The torch RNG state differs even between two uninterrupted runs (the local
            # sampler consumes it non-deterministically); training does not draw from it.
            if path.name != "rng.safetensors":
                out[f"{key}/{path.name}"] = path.read_bytes()
    assert {"state_path/weights.safetensors", "state_path/optimizer.safetensors"} <= set(out)
    assert any(name.startswith("sampler_path/") for name in out)
    return out


def _kill_and_resume(run: Path) -> None:
    """Kill after the 1st, 2nd and 3rd record and at a random moment; then finish."""
    for count in (1, 2, 3):
        killed = _kill_when(run, lambda c=count: len(_records(run)) >= c)  # type: ignore[misc]
        assert killed, f"the run finished before its checkpoint record {count}"
    # A random moment: whatever is being written (metrics, a state, a record) is torn.
    rng = random.Random(os.getpid())
    wanted = (run / "metrics.jsonl").read_text().count("\n") + rng.randint(1, 6)
    _kill_when(run, lambda: (run / "metrics.jsonl").read_text().count("\n") >= wanted)
    assert not _finished(run)
    _run_to_end(run)


def test_sigkill_at_any_point_and_resume_is_bit_identical(tmp_path: Path) -> None:
    reference, run = tmp_path / "reference", tmp_path / "killed"
    uninterrupted = _start(reference)  # runs alongside the killed chain
    try:
        _kill_and_resume(run)
        _, err = uninterrupted.communicate(timeout=TIMEOUT)
    finally:
        if uninterrupted.poll() is None:
            uninterrupted.kill()
            uninterrupted.communicate()
    assert uninterrupted.returncode == 0, err.decode()

    assert _final_bytes(run) == _final_bytes(reference)
    assert _rows(run) == _rows(reference)
    assert [r["name"] for r in _records(reference)] == [
        "000004",
        "000008",
        "000012",
        "000016",
        "000020",
        "final",
    ]
