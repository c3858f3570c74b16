"""``crucible-train train distill`` on a JSONL file of prompts, end to end through the CLI on a
tiny local_torch model: the teacher is a run directory at a chosen step, checked, and the
held-out ``test/teacher_kl`` is logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from crucible_train.entrypoints.cli.main import main
from tiny_runs import TINY_MODEL, TINY_SHAPE

pytestmark = [pytest.mark.torch, pytest.mark.slow]

TINY = [*TINY_MODEL, "metrics.sinks=[files]"]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _rows(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def test_distill_on_a_jsonl_of_prompts_from_a_run_directory_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = [
        *TINY,
        "train.sft.max_steps=2",
        "train.sft.batch_size=4",
        "train.sft.warmup_steps=1",
        "train.sft.test_size=2",
        "train.sft.eval_every=0",
        "train.sft.save_every=1",
    ]
    assert main(["train", "sft", *sft, "--run-dir", "teacher"]) == 0
    _jsonl(tmp_path / "prompts.jsonl", [{"question": f"Repeat: {w}"} for w in "abcdef"])
    _jsonl(
        tmp_path / "held.jsonl",
        [{"question": "Repeat: z"}, {"question": [{"role": "user", "content": "Repeat: y"}]}],
    )
    student = json.dumps({**TINY_SHAPE, "num_threads": 1, "seed": 5, "model_path": None})
    distill = [
        *TINY,
        "train.distill.teacher=teacher:1",
        "train.distill.dataset=prompts.jsonl",
        "train.distill.prompt_key=question",
        "train.distill.test_dataset=held.jsonl",
        f"train.distill.student={student}",
        "train.distill.max_steps=2",
        "train.distill.groups_per_batch=2",
        "train.distill.group_size=2",
        "train.distill.eval_every=1",
        "train.distill.save_every=0",
    ]
    capsys.readouterr()
    assert main(["train", "distill", *distill, "--run-dir", "student"]) == 0
    said = capsys.readouterr().err
    teacher = tmp_path / "teacher"
    assert "distill: teacher from run teacher checkpoint '000001' (step 1)" in said
    started = json.loads((tmp_path / "student" / "started_from.json").read_text())
    assert started["role"] == "teacher"
    assert started["record"]["sampler_path"] == str(teacher / "checkpoints" / "000001-sampler")
    rows = _rows(tmp_path / "student")
    kls = [float(row["teacher_kl"]) for row in rows if "teacher_kl" in row]
    held = [float(row["test/teacher_kl"]) for row in rows if "test/teacher_kl" in row]
    assert len(kls) == 2
    assert len(held) == 3  # before steps 0 and 1, and after the last
    assert all(kl == kl for kl in kls + held)  # finite, not NaN
    assert not any("test/accuracy" in row for row in rows)


def test_a_teacher_with_another_vocabulary_is_refused_before_any_model_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "hf"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"vocab_size": 151936}))
    _jsonl(tmp_path / "prompts.jsonl", [{"prompt": "hi"}])
    code = main(
        [
            "train",
            "distill",
            *TINY,
            f"sampling.local_torch.model_path={model}",
            "train.distill.dataset=prompts.jsonl",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "tokenizer vocabularies differ (teacher 151936, student 512)" in err
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made
