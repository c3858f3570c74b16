"""``eval --out`` goes through the results store the container builds (no file of its own)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_train.core.evaluation import EvalConfig, run_fingerprint
from crucible_train.entrypoints.cli import eval as eval_command
from crucible_train.entrypoints.cli.main import main

from fakes import FakeResultsStore

SAMPLES = [
    {"id": "a", "output": "4", "target": "4"},
    {"id": "b", "output": "5", "target": "4"},
]


@pytest.fixture
def asked() -> list[str]:
    """The paths ``eval`` asked the container for a results store of."""
    return []


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: list[str]) -> FakeResultsStore:
    monkeypatch.chdir(tmp_path)
    fake = FakeResultsStore(location="memory://r.jsonl")

    def results_store(path: str) -> FakeResultsStore:
        asked.append(path)
        return fake

    monkeypatch.setattr(eval_command, "results_store", results_store)
    return fake


def _samples(tmp_path: Path) -> Path:
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SAMPLES), encoding="utf-8")
    return path


def test_results_go_to_the_store_under_the_samples_fingerprint(
    tmp_path: Path,
    store: FakeResultsStore,
    asked: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    samples = _samples(tmp_path)
    code = main(["eval", "--samples", str(samples), "--out", "r.jsonl", "metrics.sinks=[noop]"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert asked == ["r.jsonl"]
    assert not (tmp_path / "r.jsonl").exists()
    expected = run_fingerprint(
        EvalConfig(scorers=("exact_match",)), samples.read_bytes(), extra={"generate": False}
    )
    assert store.opens == [(expected, False, False)]
    assert [(r["id"], r["scores"]) for r in store.appended] == [
        ("a", {"exact_match": 1.0}),
        ("b", {"exact_match": 0.0}),
    ]
    assert "1 / 2" in captured.out  # the summary is read back from the store


def test_resume_reads_the_done_ids_from_the_store(
    tmp_path: Path, store: FakeResultsStore, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _samples(tmp_path)
    args = ["eval", "--samples", str(samples), "--out", "r.jsonl", "metrics.sinks=[noop]"]
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert [opened[1] for opened in store.opens] == [False, True]
    assert len(store.appended) == 2  # nothing evaluated twice
    assert "1 / 2" in captured.out.split("evaluation summary")[-1]


def test_a_store_refusal_is_a_configuration_error(
    tmp_path: Path, store: FakeResultsStore, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _samples(tmp_path)
    args = ["eval", "--samples", str(samples), "--out", "r.jsonl", "metrics.sinks=[noop]"]
    assert main(args) == 0
    assert main(args) == 2
    assert "memory://r.jsonl already exists; pass --resume" in capsys.readouterr().err
