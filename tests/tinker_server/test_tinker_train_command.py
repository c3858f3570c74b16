"""``crucible-train train sft`` switched to Tinker by a config file, against skyrl-tx."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.tinker_server


def _config(settings: dict[str, object]) -> dict[str, Any]:
    # The key is a secret: it comes from $TINKER_API_KEY (set by the fixture), never a file.
    tinker = {k: v for k, v in settings.items() if k != "api_key"}
    return {
        "training": {"backend": "tinker", "tinker": tinker},
        "sampling": {"backend": "tinker", "tinker": tinker},
        "model_info": {"backend": "tinker", "tinker": tinker},
        "tokenizer": {"backend": "tinker", "tinker": tinker},
        "train": {"renderer": "qwen3_instruct"},
        "metrics": {"sinks": ["files"]},
    }


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_train_sft_on_tinker_from_a_config_file(
    tinker_settings: dict[str, object], tmp_path: Path
) -> None:
    config = tmp_path / "tinker.yaml"
    config.write_text(yaml.safe_dump(_config(tinker_settings)))
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "crucible_train",
        "train",
        "sft",
        "--config",
        str(config),
        "train.sft.max_steps=5",
        "train.sft.batch_size=8",
        "train.sft.learning_rate=0.02",
        "train.sft.lr_schedule=constant",
        "train.sft.warmup_steps=0",
        "train.sft.eval_every=0",
        "train.sft.save_every=0",
        "train.sft.test_size=4",
        "train.sft.max_operand=9",
        "--run-dir",
        str(run),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # TINKER_API_KEY comes from the fixture
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    saved = json.loads((run / "config.json").read_text())
    for port in ("training", "sampling", "model_info", "tokenizer"):
        assert saved[port]["backend"] == "tinker", saved[port]
    assert "tml-" not in (run / "config.json").read_text()  # the key is never written

    rows = _lines(run / "metrics.jsonl")
    nll = {row["step"]: row["train/nll"] for row in rows if "train/nll" in row}
    assert sorted(nll) == [0, 1, 2, 3, 4]
    assert all(math.isfinite(v) for v in nll.values())
    assert nll[4] < nll[0], nll
    tests = [row for row in rows if "test/nll" in row]
    assert tests
    assert math.isfinite(tests[-1]["test/nll"])
    assert tests[-1]["test/accuracy"] >= 0.0

    records = _lines(run / "checkpoints.jsonl")
    assert [r["name"] for r in records] == ["final"]
    final = records[-1]
    assert final["final"] is True
    assert final["step"] == 5
    assert str(final["state_path"]).startswith("tinker://"), final
    assert str(final["sampler_path"]).startswith("tinker://"), final
