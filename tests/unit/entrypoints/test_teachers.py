"""The teacher of ``train distill``: a run directory, a local model directory or Tinker, and
each refusal (what differs, how to fix it), all before any model is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_train.entrypoints.planning import as_overrides
from crucible_train.entrypoints.teachers import choose_teacher, same_tokenizer
from crucible_train.errors import ConfigurationError

QWEN_8B, QWEN_32B, LLAMA = "Qwen/Qwen3-8B", "Qwen/Qwen3-32B", "meta-llama/Llama-3.1-8B"


def _config(
    *,
    training: str = "local_torch",
    sampling: str = "local_torch",
    tokenizer: str = "byte_level",
    renderer: str = "qwen3_instruct",
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A configuration tree with these backends; ``extra`` adds ``{port: {key: value}}``."""
    data: dict[str, Any] = {
        "training": {"backend": training, "local_torch": {"vocab_size": 512}},
        "sampling": {"backend": sampling, "local_torch": {"model_path": None}},
        "tokenizer": {"backend": tokenizer, "byte_level": {"vocab_size": 512}},
        "train": {"renderer": renderer},
    }
    for port, settings in (extra or {}).items():
        data[port].update(settings)
    return data


def _choose(
    data: dict[str, Any], tmp_path: Path, *, resume: bool = False, **settings: Any
) -> tuple[Any, list[str]]:
    said: list[str] = []
    choice = choose_teacher(
        data,
        resume=resume,
        fresh=False,
        run_dir=tmp_path / "new",
        runs_root=tmp_path / "runs",
        settings={"teacher": None, "teacher_step": None, "student": {"hidden_size": 8}} | settings,
        say=said.append,
    )
    return choice, said


def _run(tmp_path: Path, sft_run, checkpoint, name: str, config: dict[str, Any]) -> Path:
    run = sft_run(
        tmp_path / "runs", name, [checkpoint(2), checkpoint(4), checkpoint(6, final=True)]
    )
    (run / "config.json").write_text(json.dumps(config))
    return run


# --- a run directory ----------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "name", "step"), [("", "final", 6), (":4", "000004", 4)])
def test_any_finished_run_is_a_teacher_at_its_final_or_chosen_step(
    tmp_path: Path, sft_run, checkpoint, suffix: str, name: str, step: int
) -> None:
    run = _run(tmp_path, sft_run, checkpoint, "rl-20260101-000000", _config())
    choice, said = _choose(_config(), tmp_path, teacher=f"{run}{suffix}")
    assert choice.role == "teacher"
    assert choice.started_from.run_dir == run
    assert as_overrides(choice.updates) == [f'sampling.local_torch.model_path="w/{name}"']
    assert said == [f"distill: teacher from run {run} checkpoint {name!r} (step {step})"]


def test_an_empty_student_starts_from_the_teachers_checkpoint(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    run = _run(tmp_path, sft_run, checkpoint, "dpo-20260101-000000", _config())
    choice, _ = _choose(_config(), tmp_path, teacher=f"{run}:2", student={})
    assert as_overrides(choice.updates) == [
        'sampling.local_torch.model_path="w/000002"',
        'training.local_torch.model_path="w/000002"',
    ]


def test_a_teacher_run_without_the_checkpoint_lists_those_it_has(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    unfinished = sft_run(tmp_path, "sft-a", [checkpoint(2), checkpoint(4)])
    (unfinished / "config.json").write_text(json.dumps(_config()))
    with pytest.raises(ConfigurationError) as info:
        _choose(_config(), tmp_path, teacher=str(unfinished))
    message = str(info.value)
    assert f"train.distill.teacher: {unfinished} has no finished checkpoint" in message
    assert "'000002' (step 2, weights), '000004' (step 4, weights)" in message
    assert f"{unfinished}:STEP" in message
    with pytest.raises(
        ConfigurationError, match=r"no checkpoint with weights at step 3; valid steps: 2 "
    ):
        _choose(_config(), tmp_path, teacher=f"{unfinished}:3")
    with pytest.raises(ConfigurationError, match=r"is not a run directory \(config.json missing"):
        _choose(_config(), tmp_path, teacher=str(tmp_path / "nowhere"))


def test_teacher_and_teacher_step_or_a_configured_path_are_refused(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    run = _run(tmp_path, sft_run, checkpoint, "sft-20260101-000000", _config())
    with pytest.raises(ConfigurationError, match=r"give the step as train.distill.teacher=RUN"):
        _choose(_config(), tmp_path, teacher=str(run), teacher_step=4)
    configured = _config(extra={"sampling": {"local_torch": {"model_path": "/m"}}})
    with pytest.raises(ConfigurationError, match=r"both name a teacher; keep one"):
        _choose(configured, tmp_path, teacher=str(run))


def test_a_teacher_run_in_another_chat_format_is_refused(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    run = _run(tmp_path, sft_run, checkpoint, "sft-x", _config(renderer="llama3"))
    with pytest.raises(ConfigurationError) as info:
        _choose(_config(), tmp_path, teacher=str(run))
    assert "teacher and student must use the same chat format" in str(info.value)
    assert 'renderer: "llama3" -> "qwen3_instruct"' in str(info.value)
    assert "choose a run trained with this chat format" in str(info.value)


def test_a_teacher_run_of_another_backend_or_base_model_is_refused(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    trained = _config(
        training="tinker",
        sampling="tinker",
        extra={"training": {"tinker": {"base_model": QWEN_8B}}},
    )
    run = _run(tmp_path, sft_run, checkpoint, "sft-t", trained)
    with pytest.raises(ConfigurationError, match=r"trained on 'tinker', but sampling.backend is"):
        _choose(_config(), tmp_path, teacher=str(run))
    other = _config(
        training="tinker",
        sampling="tinker",
        extra={"sampling": {"tinker": {"base_model": QWEN_32B}}},
    )
    with pytest.raises(ConfigurationError, match=r"set sampling.tinker.base_model=Qwen/Qwen3-8B"):
        _choose(other, tmp_path, teacher=str(run))


def test_a_teacher_checkpoint_with_another_vocabulary_is_refused(
    tmp_path: Path, sft_run, checkpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path, sft_run, checkpoint, "sft-v", _config())
    monkeypatch.chdir(tmp_path)  # the records' sampler paths are relative: w/final
    _model_dir(tmp_path / "w" / "final", vocab_size=1024)
    with pytest.raises(
        ConfigurationError, match=r"vocabularies differ \(teacher 1024, student 512"
    ):
        _choose(_config(), tmp_path, teacher=str(run))
    # The student given the teacher's vocabulary is accepted.
    choice, _ = _choose(_config(), tmp_path, teacher=str(run), student={"vocab_size": 1024})
    assert choice.started_from.record.name == "final"


def test_resume_reuses_the_recorded_teacher_without_searching(tmp_path: Path) -> None:
    run_dir = tmp_path / "new"
    run_dir.mkdir()
    record = {"name": "final", "step": 6, "state_path": "s/f", "sampler_path": "w/f", "final": True}
    started = {"run_dir": "/runs/rl-1", "record": record, "role": "teacher"}
    (run_dir / "started_from.json").write_text(json.dumps(started))
    choice, said = _choose(_config(), tmp_path, resume=True, teacher="/runs/rl-1")
    assert as_overrides(choice.updates) == ['sampling.local_torch.model_path="w/f"']
    assert said == ["distill: teacher from run /runs/rl-1 checkpoint 'final' (step 6)"]


# --- a local Hugging Face model directory -------------------------------------------------


def _model_dir(path: Path, *, vocab_size: int, tokenizer: dict[str, Any] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"vocab_size": vocab_size}))
    if tokenizer is not None:
        (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    return path


def _hf(model: Path, **extra: dict[str, Any]) -> dict[str, Any]:
    return _config(extra={"sampling": {"local_torch": {"model_path": str(model)}}, **extra})


def test_a_local_model_directory_with_the_students_vocabulary_is_a_teacher(
    tmp_path: Path,
) -> None:
    model = _model_dir(tmp_path / "m", vocab_size=512)
    choice, said = _choose(_hf(model), tmp_path)
    assert choice.started_from is None
    assert choice.updates == {}
    assert said == [
        f"distill: teacher from the configured sampling.local_torch.model_path = {model}"
    ]


def test_a_local_model_directory_is_refused_without_config_or_with_another_vocabulary(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"has no config.json; expected a Hugging Face"):
        _choose(_hf(tmp_path / "empty"), tmp_path)
    model = _model_dir(tmp_path / "m", vocab_size=151936)
    with pytest.raises(ConfigurationError) as info:
        _choose(_hf(model), tmp_path)
    assert "tokenizer vocabularies differ (teacher 151936, student 512)" in str(info.value)
    assert "choose a teacher trained with this run's renderer and tokenizer" in str(info.value)
    # A student loaded from a model directory is compared by its config.json.
    student = _model_dir(tmp_path / "student", vocab_size=151936)
    _choose(_hf(model), tmp_path, student={"model_path": str(student)})


TOKENIZER = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}, "added_tokens": []}


def test_a_local_teachers_tokenizer_must_be_the_configured_huggingface_one(
    tmp_path: Path,
) -> None:
    model = _model_dir(tmp_path / "m", vocab_size=512, tokenizer=TOKENIZER)
    same = tmp_path / "same.json"
    same.write_text(json.dumps({**TOKENIZER, "truncation": None}))  # not an id-deciding part
    tokenizer = {"backend": "huggingface", "huggingface": {"path": str(same)}}
    _choose(_hf(model, tokenizer=tokenizer), tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    changed = {**TOKENIZER, "model": {"type": "BPE", "vocab": {"a": 1, "b": 0}}}
    (other / "tokenizer.json").write_text(json.dumps(changed))
    tokenizer = {"backend": "huggingface", "huggingface": {"path": str(other)}}
    with pytest.raises(ConfigurationError) as info:
        _choose(_hf(model, tokenizer=tokenizer), tmp_path)
    assert str(info.value) == (
        f"the teacher {model} and the student use different tokenizers: "
        f"{model / 'tokenizer.json'} and tokenizer.huggingface.path "
        f"({other / 'tokenizer.json'}) differ in model; set "
        f"tokenizer.huggingface.path={model}, or choose a teacher trained with the "
        "student's tokenizer"
    )


# --- Tinker -------------------------------------------------------------------------------


def _tinker(teacher: str, student: str, tokenizer: str = "tinker") -> dict[str, Any]:
    return _config(
        training="tinker",
        sampling="tinker",
        tokenizer=tokenizer,
        extra={
            "training": {"tinker": {"base_model": student}},
            "sampling": {"tinker": {"base_model": teacher, "model_path": "tinker://t/w/1"}},
            "tokenizer": {"tinker": {"base_model": student}},
        },
    )


def test_a_tinker_teacher_of_the_students_family_is_accepted(tmp_path: Path) -> None:
    choice, said = _choose(_tinker(QWEN_32B, QWEN_8B), tmp_path, student={})
    assert choice.updates == {}
    assert said == [
        "distill: teacher from the configured sampling.tinker.model_path = tinker://t/w/1"
    ]


def test_a_tinker_teacher_with_another_tokenizer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        _choose(_tinker(QWEN_32B, LLAMA), tmp_path, student={})
    message = str(info.value)
    assert message.startswith(
        "the Tinker teacher 'Qwen/Qwen3-32B' and the student's training.tinker.base_model "
        "'meta-llama/Llama-3.1-8B' use different tokenizers (Qwen3 vs Llama 3); distil "
        "between models of one family: Qwen3 (Qwen/Qwen3-*)"
    )
    with pytest.raises(ConfigurationError, match=r"tokenizer.backend is 'byte_level'; set"):
        _choose(_tinker(QWEN_32B, QWEN_8B, tokenizer="byte_level"), tmp_path, student={})


def test_what_cannot_be_checked_offline_is_said(tmp_path: Path) -> None:
    _, said = _choose(_tinker("acme/Unknown-7B", "acme/Unknown-1B"), tmp_path, student={})
    assert len(said) == 3
    assert said[1].startswith(
        "distill: cannot tell offline whether the Tinker teacher 'acme/Unknown-7B' and the "
        "student's training.tinker.base_model 'acme/Unknown-1B' share a tokenizer (known "
        "families: Qwen3 (Qwen/Qwen3-*), Llama 3 (meta-llama/Llama-3*),"
    )
    assert said[1].endswith("; the run trusts they do")
    assert "tokenizer.tinker.base_model 'acme/Unknown-1B'" in said[2]
    _, said = _choose(_tinker(QWEN_32B, QWEN_8B, tokenizer="huggingface"), tmp_path, student={})
    assert said[1:] == [
        "distill: cannot check offline that tokenizer.backend=huggingface is the tokenizer "
        "of the Tinker teacher 'Qwen/Qwen3-32B'; the run trusts it is"
    ]


def test_tokenizer_families() -> None:
    assert same_tokenizer(QWEN_8B, QWEN_8B) is True
    assert same_tokenizer("acme/x", "acme/x") is True
    assert same_tokenizer(QWEN_32B, "Qwen/Qwen3-30B-A3B-Base") is True
    assert same_tokenizer("meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.2-1B") is True
    assert same_tokenizer(QWEN_8B, LLAMA) is False
    assert same_tokenizer(QWEN_8B, "acme/x") is None
    assert same_tokenizer(QWEN_8B, None) is None
