"""``crucible-train train sft`` end to end in a subprocess on a tiny local_torch model:
the run directory, then Ctrl-C (exit 130, an interrupted checkpoint) and ``--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_runs import TINY_SFT

pytest.importorskip("torch")

pytestmark = [pytest.mark.torch, pytest.mark.slow]

TINY = list(TINY_SFT)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "crucible_train", "train", "sft", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HF_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _records(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "checkpoints.jsonl").read_text().splitlines()]


def test_train_sft_writes_a_complete_run_dir(tmp_path: Path) -> None:
    done = subprocess.run(
        _command(*TINY, "train.sft.max_steps=4", "train.sft.save_every=2"),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("sft-")
    for name in ("metrics.jsonl", "config.json", "checkpoints.jsonl", "checkpoints"):
        assert (run / name).exists(), name
    records = _records(run)
    assert [r["name"] for r in records] == ["000002", "final"]
    assert records[-1]["final"] is True
    rows = (run / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line).get("step") for line in rows]
    assert {0, 1, 2, 3} <= set(steps)
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["local_torch"]["checkpoint_dir"] == str(run / "checkpoints")
    assert (run / "plots" / "loss.png").exists()
    assert "finished" in done.stdout
    assert "4/4" in done.stdout
    # The summary describes the model this run trained (model_info follows its settings).
    assert config["model_info"]["local_torch"]["hidden_size"] == 32
    assert "qwen3, 1 layers, hidden 32, 2 heads" in done.stdout
    assert "parameters" in done.stdout


def test_ctrl_c_saves_an_interrupted_checkpoint_and_resume_finishes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [*TINY, "train.sft.max_steps=400", "train.sft.save_every=0", "--run-dir", str(run)]
    process = subprocess.Popen(
        _command(*args),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    last = _records(run)[-1]
    assert str(last["name"]).startswith("interrupted-")
    assert 0 < int(str(last["step"])) < 400

    # Resume with the same settings, ending sooner so the test stays short: a changed
    # max_steps is refused (the configuration must match) ...
    changed = subprocess.run(
        _command(*TINY, "train.sft.max_steps=5", "train.sft.save_every=0", "--run-dir", str(run)),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert changed.returncode == 2
    assert "already holds a run" in changed.stderr
    refused = subprocess.run(
        _command(
            *TINY,
            "train.sft.max_steps=5",
            "train.sft.save_every=0",
            "--run-dir",
            str(run),
            "--resume",
        ),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2
    assert "train.sft.max_steps: 400 -> 5" in refused.stderr
    # ... so finish it with the original settings.
    resumed = subprocess.run(
        _command(*args, "--resume"),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert _records(run)[-1]["name"] == "final"
    assert "resumed" in resumed.stderr
