"""Tests for ``crucible-train eval``: scoring, malformed lines, resume, generation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_train.entrypoints.cli.main import main
from servers.fake_openai import FakeOpenAI


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def _write(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _results(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[1:]]  # line 0 is the header


SAMPLES = [
    {"id": "a", "output": "4", "target": "4"},
    {"id": "b", "output": "5", "target": "4"},
    {"id": "c", "output": "Paris", "target": "Paris"},
]
FILES = ["metrics.sinks=[files]", "metrics.run_dir=run"]


def _metrics_rows(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_outputs_in_file_are_scored_summarised_and_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _write(tmp_path / "s.jsonl", SAMPLES)
    code = main(["eval", "--samples", str(samples), "--out", "r.jsonl", *FILES])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "evaluation summary" in captured.out
    assert "2 / 3" in captured.out
    assert "95% CI" in captured.out
    assert "3/3" in captured.err  # the progress bar ends at the line count
    results = _results(tmp_path / "r.jsonl")
    assert [(r["id"], r["scores"]) for r in results] == [
        ("a", {"exact_match": 1.0}),
        ("b", {"exact_match": 0.0}),
        ("c", {"exact_match": 1.0}),
    ]
    logged = {k: v for row in _metrics_rows(tmp_path) for k, v in row.items()}
    assert logged["eval/total"] == 3
    assert logged["eval/correct"] == 2
    assert logged["eval/exact_match/mean"] == pytest.approx(2 / 3)


def test_malformed_line_is_counted_and_strict_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _write(
        tmp_path / "s.jsonl",
        [SAMPLES[0], "{not json", "", "[1, 2]", {"output": "x"}, SAMPLES[1]],
    )
    code = main(["eval", "--samples", str(samples), "--out", "r.jsonl", "metrics.sinks=[noop]"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert ":2: malformed sample line" in captured.err
    assert ":4: malformed sample line" in captured.err
    results = _results(tmp_path / "r.jsonl")
    assert [r["id"] for r in results] == ["a", "<line 2>", "<line 4>", "<line 5>", "b"]
    assert "malformed sample line 5" in results[3]["error"]
    assert "no 'id'" in results[3]["error"]
    assert "errors" in captured.out

    code = main(["eval", "--samples", str(samples), "--strict", "metrics.sinks=[noop]"])
    captured = capsys.readouterr()
    assert code == 2
    assert ":2: malformed sample line" in captured.err
    assert "--strict" in captured.err


def test_resume_skips_done_ids_and_summarises_the_whole_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _write(tmp_path / "s.jsonl", SAMPLES)
    out = tmp_path / "r.jsonl"
    assert main(["eval", "--samples", str(samples), "--out", str(out), *FILES]) == 0
    # Simulate an interrupted run: keep the header and the first result only.
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:2]), encoding="utf-8")
    capsys.readouterr()
    args = ["eval", "--samples", str(samples), "--out", str(out), "--resume", *FILES]
    assert main(args) == 0
    assert [r["id"] for r in _results(out)] == ["a", "b", "c"]
    assert "2 / 3" in capsys.readouterr().out
    # Without --resume an existing results file is refused.
    assert main(["eval", "--samples", str(samples), "--out", str(out), *FILES]) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_onto_a_different_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _write(tmp_path / "s.jsonl", SAMPLES)
    out = tmp_path / "r.jsonl"
    assert main(["eval", "--samples", str(samples), "--out", str(out), *FILES]) == 0
    before = out.read_text(encoding="utf-8")
    capsys.readouterr()
    code = main(
        [
            "eval",
            "--samples",
            str(samples),
            "--out",
            str(out),
            "--resume",
            "--scorer",
            "contains",
            *FILES,
        ]
    )
    assert code == 2
    assert "different run" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == before


def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = _write(tmp_path / "s.jsonl", SAMPLES)
    assert main(["eval", "--samples", "missing.jsonl"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", "--samples", str(samples), "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["eval", "--samples", str(samples), "--scorer", "nope"]) == 2
    assert "unknown scoring method" in capsys.readouterr().err
    assert main(["eval", "--samples", str(samples), "--generate"]) == 2
    assert "llm.backend" in capsys.readouterr().err
    assert main(["eval", "--samples", str(samples), "--scorer", "semantic_similarity"]) == 2
    assert "embedding.backend" in capsys.readouterr().err


def test_generate_fills_missing_outputs_through_the_llm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _write(
        tmp_path / "s.jsonl",
        [
            {"id": "g1", "input": "hello", "target": "echo: hello"},
            {"id": "g2", "input": "bye", "target": "nope"},
            {"id": "kept", "output": "given", "target": "given"},
            {"id": "no-input", "target": "x"},
        ],
    )
    with FakeOpenAI() as server:
        code = main(
            [
                "eval",
                "--samples",
                str(samples),
                "--generate",
                "--out",
                "r.jsonl",
                "--concurrency",
                "2",
                "--chunk-size",
                "2",
                "llm.backend=openai_compat",
                f"llm.openai_compat.base_url={server.url}",
                "llm.openai_compat.model=fake",
                "llm.openai_compat.max_retries=0",
                "metrics.sinks=[noop]",
            ]
        )
        requests = list(server.requests)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = {r["id"]: r for r in _results(tmp_path / "r.jsonl")}
    assert results["g1"]["output"] == "echo: hello"
    assert results["g1"]["scores"] == {"exact_match": 1.0}
    assert results["g2"]["scores"] == {"exact_match": 0.0}
    assert results["kept"]["output"] == "given"
    assert "neither output nor input" in results["no-input"]["error"]
    assert len(requests) == 2  # only samples without an output were generated


@pytest.mark.torch
def test_semantic_similarity_uses_the_embedding_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sentence_transformers")
    samples = _write(
        tmp_path / "s.jsonl",
        [{"id": "same", "output": "a cat", "target": "a cat"}],
    )
    code = main(
        [
            "eval",
            "--samples",
            str(samples),
            "--scorer",
            "semantic_similarity",
            "--out",
            "r.jsonl",
            "embedding.backend=sentence_transformers",
            "metrics.sinks=[noop]",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (result,) = _results(tmp_path / "r.jsonl")
    assert result["scores"]["semantic_similarity"] == pytest.approx(1.0, abs=1e-4)
