"""The teacher of ``train distill``: which weights the sampling backend loads, and the checks.

The teacher is the configured sampling backend (``sampling.backend``) over one of:

* a run's checkpoint: ``train.distill.teacher: RUN_DIR[:STEP]`` (a run of any recipe; its
  ``final`` checkpoint, or the one at ``STEP``), or by default the latest finished SFT run
  (at ``train.distill.teacher_step``);
* a local Hugging Face model directory: ``sampling.local_torch.model_path``;
* Tinker sampler weights: ``sampling.backend: tinker`` with ``sampling.tinker.model_path``.

The teacher scores the student's token ids, so a teacher with another chat format or
tokenizer would score nonsense without any error. Every choice is checked here, before any
model is built:

* a run directory: its ``config.json`` renderer and tokenizer settings equal this run's;
  it trained on the selected sampling backend (for Tinker: over the same
  ``base_model``); its checkpoint's vocabulary (``config.json`` of a local checkpoint)
  equals the student's;
* a local directory: its ``config.json`` ``vocab_size`` equals the student's and, when it
  holds a ``tokenizer.json`` and ``tokenizer.backend`` is ``huggingface``, that tokenizer
  equals the configured one (vocabulary, added tokens, normaliser, pre-tokeniser); its
  chat format cannot be read from the directory: ``train.renderer`` is used for both;
* Tinker: the teacher's ``base_model`` and the student's (a Tinker student) and
  ``tokenizer.tinker.base_model`` are one model or of one tokenizer family
  (:data:`TOKENIZER_FAMILIES`); a ``byte_level`` tokenizer is refused. Which base model a
  ``tinker://`` path was trained from, and whether a local ``tokenizer.json`` is the
  Tinker model's, cannot be checked offline: the plan says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crucible_train.container import TRAIN_KEY
from crucible_train.core.training.distill import check_same_format
from crucible_train.entrypoints.run_configs import (
    LOCAL_TORCH,
    backend_of,
    check_run_format,
    start_path,
)
from crucible_train.entrypoints.run_dirs import (
    CONFIG_FILE,
    STARTED_FROM_FILE,
    SftStart,
    StartChoice,
    find_sft_start,
    read_json,
    run_checkpoint,
    split_run_ref,
)
from crucible_train.errors import ConfigurationError

__all__ = ["TEACHER_KEY", "TOKENIZER_FAMILIES", "choose_teacher", "same_tokenizer"]

TEACHER_KEY = "train.distill.teacher"
TEACHER = "teacher"
SAMPLING = "sampling"
TRAINING = "training"
TINKER = "tinker"
HUGGINGFACE = "huggingface"
BYTE_LEVEL = "byte_level"

TOKENIZER_FAMILIES: tuple[tuple[str, str], ...] = (
    ("Qwen/Qwen3-", "Qwen3"),
    ("meta-llama/Llama-3", "Llama 3"),
    ("openai/gpt-oss-", "gpt-oss"),
    ("deepseek-ai/DeepSeek-V3", "DeepSeek-V3"),
    ("moonshotai/Kimi-K2", "Kimi K2"),
)
"""``(base-model name prefix, family)``: the models of one family share one tokenizer."""

# The sections of a tokenizer.json that decide which ids a text gets.
_TOKENIZER_SECTIONS = ("model", "added_tokens", "normalizer", "pre_tokenizer")

Say = Callable[[str], None]


def choose_teacher(
    data: Mapping[str, Any],
    *,
    resume: bool,
    fresh: bool,
    run_dir: Path,
    runs_root: Path,
    settings: Mapping[str, Any],
    say: Say,
) -> StartChoice:
    """The teacher of a distill run (see the module docstring), checked against the student.

    With an empty ``train.distill.student`` the student starts from the teacher's
    checkpoint too. ``--resume`` reuses ``started_from.json``.

    Args:
        data: the configuration tree (before the plan's overrides).
        resume: the run continues (``--resume``).
        fresh: ``--fresh`` (refused: distillation needs a teacher).
        run_dir: the run directory (read when resuming).
        runs_root: holds the SFT runs searched by default.
        settings: the ``train.distill`` block.
        say: prints the choice and what cannot be checked.

    Raises:
        ConfigurationError: no teacher, two teachers named, a run directory without the
            checkpoint asked for (its checkpoints are listed), or a teacher whose chat
            format, tokenizer or backend does not fit the student (what differs, and how
            to fix it).
    """
    backend = backend_of(data, SAMPLING)
    key = f"{SAMPLING}.{backend}.model_path"
    spec, step = settings.get(TEACHER), settings.get("teacher_step")
    if spec is not None and step is not None:
        raise ConfigurationError(
            f"{TEACHER_KEY}={spec} and train.distill.teacher_step={step}: teacher_step picks "
            f"a checkpoint of the latest SFT run; give the step as {TEACHER_KEY}=RUN_DIR:STEP "
            "and set train.distill.teacher_step=null"
        )
    label = "run" if spec is not None else "SFT run"
    if resume:
        saved = run_dir / STARTED_FROM_FILE
        if not saved.exists():
            return StartChoice(role=TEACHER)
        start = SftStart.from_dict(read_json(saved))
    else:
        configured = data.get(SAMPLING, {}).get(backend, {}).get("model_path")
        if spec is not None:
            if configured is not None:
                raise ConfigurationError(
                    f"{TEACHER_KEY}={spec} and {key}={configured} both name a teacher; "
                    f"keep one (set {key}=null to use the run)"
                )
            path, which = split_run_ref(str(spec))
            start = run_checkpoint(path, which, what=TEACHER_KEY)
        elif configured is not None:
            notes = _check_configured(data, settings, backend, str(configured))
            say(f"distill: teacher from the configured {key} = {configured}")
            for note in notes:
                say(note)
            return StartChoice(role=TEACHER)
        elif fresh:
            raise ConfigurationError(
                f"distill needs a teacher: drop --fresh to use the latest SFT run, or set "
                f"{TEACHER_KEY}=RUN_DIR or {key}"
            )
        else:
            found = find_sft_start(runs_root, step if isinstance(step, int) else None)
            if found is None:
                raise ConfigurationError(
                    f"distill needs a teacher: no finished SFT run under {runs_root}; run "
                    f"`crucible-train train sft` first, set {TEACHER_KEY}=RUN_DIR, or set {key}"
                )
            start = found
        _check_run_teacher(start, data, settings)
    updates = {key: start_path(start.record, data, SAMPLING)}
    if not settings.get("student"):
        # No student overrides: the student starts from the teacher's checkpoint too.
        student_key = f"{TRAINING}.{backend_of(data, TRAINING)}.model_path"
        updates[student_key] = start_path(start.record, data, TRAINING)
    say(
        f"distill: teacher from {label} {start.run_dir} checkpoint {start.record.name!r} "
        f"(step {start.record.step})"
    )
    return StartChoice(started_from=start, role=TEACHER, updates=updates)


def same_tokenizer(teacher: str | None, student: str | None) -> bool | None:
    """Whether two Tinker base models share a tokenizer: the same model, or one family of
    :data:`TOKENIZER_FAMILIES`; ``None`` when that cannot be told offline."""
    if teacher == student:
        return True
    families = [_family(teacher), _family(student)]
    if None in families:
        return None
    return families[0] == families[1]


def _family(base_model: str | None) -> str | None:
    for prefix, family in TOKENIZER_FAMILIES:
        if base_model is not None and base_model.startswith(prefix):
            return family
    return None


def _block(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    """``data[k1][k2]...``, or ``{}`` where a level is missing."""
    for key in keys:
        value = data.get(key) if isinstance(data, Mapping) else None
        data = value if isinstance(value, Mapping) else {}
    return data


def _model_vocab(directory: Path) -> int | None:
    """``vocab_size`` of a Hugging Face model directory's ``config.json``, if it has one."""
    if not (directory / CONFIG_FILE).is_file():
        return None
    vocab = read_json(directory / CONFIG_FILE).get("vocab_size")
    return vocab if isinstance(vocab, int) else None


def _student_vocab(data: Mapping[str, Any], settings: Mapping[str, Any]) -> int | None:
    """The local student's vocabulary: its model directory's, or its ``vocab_size``."""
    if backend_of(data, TRAINING) != LOCAL_TORCH:
        return None
    local = {**_block(data, TRAINING, LOCAL_TORCH), **_block(settings, "student")}
    if local.get("model_path"):
        return _model_vocab(Path(str(local["model_path"])))
    vocab = local.get("vocab_size")
    return vocab if isinstance(vocab, int) else None


def _renderer(config: Mapping[str, Any]) -> str:
    return str(_block(config, TRAIN_KEY).get("renderer"))


def _check_run_teacher(
    start: SftStart, data: Mapping[str, Any], settings: Mapping[str, Any]
) -> None:
    """A run's checkpoint as the teacher: chat format, backend and vocabulary."""
    run = start.run_dir
    config = read_json(run / CONFIG_FILE)
    check_run_format(run, config, data, who="teacher and student")
    backend, trained_on = backend_of(data, SAMPLING), backend_of(config, TRAINING)
    if trained_on != backend:
        raise ConfigurationError(
            f"the teacher run {run} trained on {trained_on!r}, but sampling.backend is "
            f"{backend!r}, which cannot load its checkpoint; set sampling.backend={trained_on}"
        )
    if backend == TINKER:
        base = _block(config, TRAINING, TINKER).get("base_model")
        sampler_base = _block(data, SAMPLING, TINKER).get("base_model")
        if base != sampler_base:
            raise ConfigurationError(
                f"the teacher run {run} trained LoRA weights over {base!r}, but "
                f"sampling.tinker.base_model is {sampler_base!r}; set "
                f"sampling.tinker.base_model={base}"
            )
    if not settings.get("student"):
        return  # the student starts from the same checkpoint
    sampler = start.record.sampler_path
    teacher_vocab = _model_vocab(Path(sampler)) if sampler and backend == LOCAL_TORCH else None
    if teacher_vocab is None:
        vocab = _block(config, TRAINING, LOCAL_TORCH).get("vocab_size")
        teacher_vocab = vocab if isinstance(vocab, int) else None
    student_vocab = _student_vocab(data, settings)
    if teacher_vocab is not None and student_vocab is not None:
        check_same_format(_renderer(config), _renderer(data), teacher_vocab, student_vocab)


def _check_configured(
    data: Mapping[str, Any], settings: Mapping[str, Any], backend: str, path: str
) -> list[str]:
    """A configured ``sampling.<backend>.model_path`` as the teacher; returns notes."""
    if backend == LOCAL_TORCH:
        _check_model_dir(Path(path), data, settings)
        return []
    if backend == TINKER:
        return _check_tinker(data, settings)
    return []


def _check_model_dir(directory: Path, data: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """A local Hugging Face directory as the teacher: vocabulary and tokenizer files."""
    if not (directory / CONFIG_FILE).is_file():
        raise ConfigurationError(
            f"sampling.local_torch.model_path: {directory} has no {CONFIG_FILE}; expected a "
            "Hugging Face model directory (save_pretrained output, or a run's "
            "checkpoints/<name> directory)"
        )
    teacher_vocab, student_vocab = _model_vocab(directory), _student_vocab(data, settings)
    if teacher_vocab is not None and student_vocab is not None:
        renderer = _renderer(data)
        check_same_format(renderer, renderer, teacher_vocab, student_vocab)
    tokenizer = _block(data, "tokenizer")
    teacher_file = directory / "tokenizer.json"
    if tokenizer.get("backend") != HUGGINGFACE or not teacher_file.is_file():
        return
    configured = Path(str(_block(tokenizer, HUGGINGFACE).get("path")))
    student_file = configured / "tokenizer.json" if configured.is_dir() else configured
    if not student_file.is_file():
        return  # the tokenizer backend reports its own missing file
    differing = [
        section
        for section, (a, b) in _tokenizer_sections(teacher_file, student_file).items()
        if a != b
    ]
    if differing:
        raise ConfigurationError(
            f"the teacher {directory} and the student use different tokenizers: "
            f"{teacher_file} and tokenizer.huggingface.path ({student_file}) differ in "
            f"{', '.join(differing)}; set tokenizer.huggingface.path={directory}, or choose "
            "a teacher trained with the student's tokenizer"
        )


def _tokenizer_sections(a: Path, b: Path) -> dict[str, tuple[Any, Any]]:
    """The id-deciding sections of two ``tokenizer.json`` files, side by side."""
    loaded = []
    for path in (a, b):
        try:
            loaded.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"{path}: cannot read the tokenizer ({exc})") from None
    return {s: (loaded[0].get(s), loaded[1].get(s)) for s in _TOKENIZER_SECTIONS}


def _check_tinker(data: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """A Tinker teacher: its base model's tokenizer against the student's."""
    teacher = _block(data, SAMPLING, TINKER).get("base_model")
    families = ", ".join(f"{family} ({prefix}*)" for prefix, family in TOKENIZER_FAMILIES)
    pairs = []
    if backend_of(data, TRAINING) == TINKER:
        base = _block(settings, "student").get("base_model") or _block(data, TRAINING, TINKER).get(
            "base_model"
        )
        pairs.append(("the student's training.tinker.base_model", base))
    tokenizer = _block(data, "tokenizer")
    backend = tokenizer.get("backend")
    notes = []
    if backend == TINKER:
        pairs.append(("tokenizer.tinker.base_model", _block(tokenizer, TINKER).get("base_model")))
    elif backend == BYTE_LEVEL:
        raise ConfigurationError(
            f"the Tinker teacher {teacher!r} scores ids of its own tokenizer, but "
            "tokenizer.backend is 'byte_level'; set tokenizer.backend=tinker with "
            f"tokenizer.tinker.base_model={teacher} (or a model of its family)"
        )
    else:
        notes.append(
            f"distill: cannot check offline that tokenizer.backend={backend} is the "
            f"tokenizer of the Tinker teacher {teacher!r}; the run trusts it is"
        )
    for what, base in pairs:
        same = same_tokenizer(teacher, base)
        if same is False:
            raise ConfigurationError(
                f"the Tinker teacher {teacher!r} and {what} {base!r} use different "
                f"tokenizers ({_family(teacher)} vs {_family(base)}); distil between models "
                f"of one family: {families}"
            )
        if same is None:
            notes.append(
                f"distill: cannot tell offline whether the Tinker teacher {teacher!r} and "
                f"{what} {base!r} share a tokenizer (known families: {families}); the run "
                "trusts they do"
            )
    return notes
