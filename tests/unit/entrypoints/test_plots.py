"""The run's PNG plots drawn from ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_train.entrypoints.plots import read_curves, write_plots


def _metrics_file(run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "step": s,
            "train/nll": 3.0 - 0.1 * s,
            "lr": 0.1,
            "reward/mean": 0.1 * s,
            "num_loss_tokens": 27,
            "test/nll/weight": 27,
        }
        for s in range(10)
    ]
    rows.append({"step": 9, "test/accuracy": 0.5, "test/nll": "NaN"})
    rows.append({"no_step": 1})
    lines = [json.dumps(r) for r in rows] + ['{"step": 10, "train/nll"']  # torn line
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_read_curves_skips_torn_lines_and_non_finite_values(tmp_path: Path) -> None:
    _metrics_file(tmp_path)
    curves = read_curves(tmp_path / "metrics.jsonl")
    assert sorted(curves) == [
        "lr",
        "num_loss_tokens",
        "reward/mean",
        "test/accuracy",
        "test/nll/weight",
        "train/nll",
    ]
    assert curves["train/nll"][0] == (0, 3.0)
    assert len(curves["train/nll"]) == 10


def test_plots_one_png_per_family_present(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _metrics_file(tmp_path)
    written = write_plots(tmp_path)
    assert [p.name for p in written] == ["loss.png", "accuracy.png", "reward.png"]
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG")
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]
    assert write_plots(tmp_path / "empty") == []
