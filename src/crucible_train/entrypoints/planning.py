"""Planning a ``crucible-train train`` run: every decision made before anything is built.

:func:`plan_run` turns the command's :class:`TrainOptions` into a :class:`RunPlan`: the
validated configuration the container will be built from, the run directory, the
recipe's config and job, and where the weights start. It reads the configuration and
earlier run directories but writes nothing and builds no adapter, so every refusal
(unknown recipe, ``--resume`` on a changed configuration, a teacher in another chat
format, ...) happens before a run directory or a model exists.

The decisions, in order:

* **Run directory**: ``--run-dir DIR``; with ``--resume`` and no ``--run-dir``, the
  latest ``<train.runs_root>/<recipe>-*`` run; otherwise a new timestamped one. A new
  run refuses a directory that already holds checkpoint records.
* **Distill student**: ``train.distill.student`` is applied to the selected training
  backend's settings.
* **Start from SFT** (``rl``, ``dpo``, ``distill``): see :func:`choose_start`.
* **Sinks**: the ``console`` sink gives way to the progress bar when other sinks are
  listed (unless ``--console-metrics``); ``metrics.run_dir`` and
  ``training.local_torch.checkpoint_dir`` point into the run directory.
* **Model facts**: when ``model_info`` and ``training`` select the same local backend,
  ``model_info``'s settings follow the trained model's (so the run summary describes the
  model this run trains, with the student's or the SFT checkpoint's shape).
* **Resume**: the run's ``config.json`` must equal the new configuration, apart from
  :data:`RUN_DIR_KEYS`, the ``model_info`` block and other recipes' ``train`` blocks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from crucible_train.container import (
    TRAIN_KEY,
    TRAIN_RECIPES,
    ResolvedConfig,
    load_config,
    run_store,
)
from crucible_train.core.config_dump import dump_config
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.core.training.distill import check_same_format
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.entrypoints.model_facts import OFFLINE_MODEL_INFO
from crucible_train.entrypoints.run_dirs import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    STARTED_FROM_FILE,
    SftStart,
    find_sft_start,
    latest_run,
    new_run_dir,
    read_json,
)
from crucible_train.errors import ConfigurationError
from crucible_train.recipes.distill import DEFAULT_STUDENT

__all__ = [
    "DESCRIPTIVE_PORTS",
    "RUN_DIR_KEYS",
    "RunPlan",
    "StartChoice",
    "TrainOptions",
    "as_overrides",
    "choose_start",
    "config_differences",
    "format_mismatches",
    "plan_run",
]

LOCAL_TORCH = "local_torch"
NOOP = "noop"
SFT = "sft"
DISTILL = "distill"
CONSOLE_SINK = "console"
MODEL_INFO = "model_info"
# Keys that name the run directory itself: they differ between runs by design.
RUN_DIR_KEYS = frozenset({"metrics.run_dir", "training.local_torch.checkpoint_dir"})
DESCRIPTIVE_PORTS = frozenset({MODEL_INFO})
"""Ports that describe the run without shaping it: ``--resume`` does not compare them."""

Say = Callable[[str], None]


@attrs.frozen(kw_only=True)
class TrainOptions:
    """The ``train`` command's options (see ``crucible-train train --help``)."""

    recipe: str
    config_file: str | None = None
    overrides: tuple[str, ...] = ()
    run_dir: str | None = None
    resume: bool = False
    fresh: bool = False
    console_metrics: bool = False


@attrs.frozen(kw_only=True)
class RunPlan:
    """Everything ``train`` decided before building the container.

    Attributes:
        recipe: the recipe's name (``sft``).
        run_dir: the run directory (absolute or relative to the working directory).
        resume: continue the run in ``run_dir`` from its last resumable checkpoint.
        config: the validated configuration the container is built from (the plan's
            own overrides included).
        logged_config: ``config`` as JSON-safe data with secrets redacted: the run's
            hyperparameters and ``config.json``.
        recipe_config: ``train.<recipe>`` as the recipe's config class.
        job: the recipe's ``run_<recipe>_job(context, config)``.
        renderer: the renderer name (``train.renderer``).
        started_from: the SFT checkpoint the weights (or the teacher) start from.
        role: what ``started_from`` provides: ``weights`` or ``teacher``.
        needs_teacher: the job needs the teacher's sampler (``distill``).
        describe_model: the ``model_info`` port describes the trained model, so the
            summary may ask it (a local backend: no service is contacted).
    """

    recipe: str
    run_dir: Path
    resume: bool
    config: ResolvedConfig
    logged_config: Mapping[str, Any]
    recipe_config: Any
    job: Callable[[JobContext, Any], LoopResult]
    renderer: str
    started_from: SftStart | None = None
    role: str = "weights"
    needs_teacher: bool = False
    describe_model: bool = False


@attrs.frozen(kw_only=True)
class StartChoice:
    """Where the weights (or, for ``distill``, the teacher) of a run start.

    Attributes:
        started_from: the SFT checkpoint chosen, or ``None`` (a configured path, a new
            model, or a resumed run that started without one).
        role: ``weights`` (``rl``, ``dpo``) or ``teacher`` (``distill``).
        updates: dotted configuration keys the plan sets, e.g.
            ``{"training.local_torch.model_path": "/runs/sft-.../final"}``.
    """

    started_from: SftStart | None = None
    role: str = "weights"
    updates: Mapping[str, Any] = attrs.field(factory=dict)


def plan_run(options: TrainOptions, *, say: Say) -> RunPlan:
    """Decide the run (see the module docstring); builds nothing, writes nothing.

    Args:
        options: the command's options.
        say: prints a note for the user (the start-from-SFT choice).

    Raises:
        ConfigurationError: unknown recipe, invalid configuration, a run directory that
            does not fit (``--resume`` without a run or on a changed configuration, a new
            run into a used directory), or an SFT run that cannot be a starting point.
    """
    recipe = TRAIN_RECIPES.get(options.recipe)
    if recipe is None:
        raise ConfigurationError(
            f"unknown recipe {options.recipe!r}; valid: {', '.join(TRAIN_RECIPES)}"
        )
    if options.run_dir is not None and not options.run_dir.strip():
        raise ConfigurationError("--run-dir: empty directory name")
    base = load_config(options.config_file, options.overrides)
    schema = recipe.load_config_class()
    data = base.as_dict()
    train = data.get(TRAIN_KEY, {})
    runs_root = Path(str(train.get("runs_root", "runs")))
    settings = train.get(options.recipe, {})
    run_dir = _choose_run_dir(options, runs_root)
    updates: dict[str, Any] = {}
    if options.recipe == DISTILL:
        updates.update(_student_updates(data, settings))
    start = StartChoice()
    if options.recipe != SFT:
        start = choose_start(
            options, data, run_dir=run_dir, runs_root=runs_root, settings=settings, say=say
        )
        updates.update(start.updates)
    sinks = data.get("metrics", {}).get("sinks", [])
    if not options.console_metrics and CONSOLE_SINK in sinks and len(sinks) > 1:
        # The live bar and the summary table replace the per-step console tables.
        updates["metrics.sinks"] = [s for s in sinks if s != CONSOLE_SINK]
    updates["metrics.run_dir"] = str(run_dir)
    updates["training.local_torch.checkpoint_dir"] = str(run_dir / CHECKPOINTS_DIR)
    describe_model = _describes_trained_model(data)
    if describe_model:
        updates.update(_model_info_updates(data, updates))
    resolved = load_config(options.config_file, [*options.overrides, *as_overrides(updates)])
    logged = dump_config(resolved.as_dict(), secrets=resolved.secret_values())
    if options.resume:
        differences = config_differences(
            read_json(run_dir / CONFIG_FILE), logged, recipe=options.recipe
        )
        if differences:
            raise ConfigurationError(
                f"--resume: the configuration differs from the one {run_dir} was started "
                "with; resume with the same settings or start a new run:\n" + "\n".join(differences)
            )
    full = resolved.as_dict(redact_secrets=False)[TRAIN_KEY]
    return RunPlan(
        recipe=options.recipe,
        run_dir=run_dir,
        resume=options.resume,
        config=resolved,
        logged_config=logged,
        recipe_config=schema(**full[options.recipe]),
        job=recipe.load_job(),
        renderer=str(full["renderer"]),
        started_from=start.started_from,
        role=start.role,
        needs_teacher=options.recipe == DISTILL,
        describe_model=describe_model,
    )


def as_overrides(updates: Mapping[str, Any]) -> list[str]:
    """Dotted ``key=value`` overrides for ``updates`` (values as YAML: JSON is YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in updates.items()]


def _choose_run_dir(options: TrainOptions, runs_root: Path) -> Path:
    """``--run-dir``, the latest run for ``--resume``, or a new run directory."""
    if options.run_dir is not None:
        run_dir = Path(os.path.abspath(options.run_dir))
    elif options.resume:
        found = latest_run(runs_root, options.recipe)
        if found is None:
            raise ConfigurationError(
                f"--resume: no {options.recipe} run under {runs_root} to resume; "
                "pass --run-dir DIR or start a new run without --resume"
            )
        run_dir = found
    else:
        run_dir = new_run_dir(runs_root, options.recipe)
    if options.resume:
        if not (run_dir / CONFIG_FILE).exists():
            raise ConfigurationError(f"--resume: {run_dir} holds no run ({CONFIG_FILE} missing)")
    elif CheckpointLog(run_store(run_dir)).records():
        raise ConfigurationError(
            f"--run-dir: {run_dir} already holds a run; add --resume to continue it, "
            "or choose another directory"
        )
    return run_dir


def _backend_of(data: Mapping[str, Any], port: str) -> str:
    """The backend selected for ``port`` in the configuration tree ``data``."""
    section = data.get(port)
    backend = section.get("backend") if isinstance(section, Mapping) else None
    return backend if isinstance(backend, str) else LOCAL_TORCH


def _student_updates(data: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``train.distill.student`` applied to the selected training backend's settings."""
    student = settings.get("student") or {}
    if not isinstance(student, Mapping) or not student:
        return {}
    backend = _backend_of(data, "training")
    if backend == NOOP:  # nothing to apply the settings to; keep them visible
        backend = LOCAL_TORCH
    if backend != LOCAL_TORCH and dict(student) == dict(DEFAULT_STUDENT):
        raise ConfigurationError(
            "train.distill.student holds local-engine settings (a fresh small model), "
            f"but training.backend is {backend!r}: set train.distill.student={{}} to "
            "start the student from the SFT checkpoint, or give the student's "
            f"training.{backend} settings there (e.g. {{base_model: ...}})"
        )
    return {f"training.{backend}.{key}": value for key, value in student.items()}


def _start_path(record: CheckpointRecord, data: Mapping[str, Any], port: str) -> str | None:
    """Which saved path of an SFT checkpoint ``port``'s backend starts from.

    The local engine loads weights from the sampler directory (a Hugging Face model
    directory) for training and sampling alike; a Tinker training client starts from the
    saved state (``tinker://.../weights/NAME``) and a Tinker sampler from sampler weights.
    """
    if port == "training" and _backend_of(data, port) != LOCAL_TORCH:
        return record.state_path
    return record.sampler_path


def choose_start(
    options: TrainOptions,
    data: Mapping[str, Any],
    *,
    run_dir: Path,
    runs_root: Path,
    settings: Mapping[str, Any],
    say: Say,
) -> StartChoice:
    """rl/dpo/distill: the SFT checkpoint to start from (for ``distill``: the teacher).

    The latest finished ``<runs_root>/sft-*`` run, at its ``final`` checkpoint or at the
    recipe's ``start_from_step`` (``distill``: ``teacher_step``); ``rl``/``dpo`` load its
    weights, ``distill`` samples from it as the teacher (and, with an empty ``student``,
    trains the student from it too). An explicitly configured ``model_path`` wins;
    ``--fresh`` skips the search; ``--resume`` reuses ``started_from.json``.

    Args:
        options: the command's options.
        data: the configuration tree (before the plan's overrides).
        run_dir: the run directory (read when resuming).
        runs_root: holds the SFT runs.
        settings: the recipe's ``train.<recipe>`` block.
        say: prints the choice.

    Raises:
        ConfigurationError: ``distill`` without a teacher, an SFT run in another chat
            format, or a teacher whose vocabulary differs from the student's.
    """
    distill = options.recipe == DISTILL
    port = "sampling" if distill else "training"
    role = "teacher" if distill else "weights"
    key = f"{port}.{_backend_of(data, port)}.model_path"
    start: SftStart | None = None
    if options.resume:
        saved = run_dir / STARTED_FROM_FILE
        if saved.exists():
            start = SftStart.from_dict(read_json(saved))
    else:
        configured = data.get(port, {}).get(_backend_of(data, port), {}).get("model_path")
        if configured is not None:
            say(f"{options.recipe}: {role} from the configured {key} = {configured}")
            return StartChoice(role=role)
        if options.fresh:
            if distill:
                raise ConfigurationError(
                    f"distill needs a teacher: drop --fresh to use the latest SFT run, or set {key}"
                )
            say(f"{options.recipe}: --fresh: starting from a new random model")
            return StartChoice(role=role)
        step = settings.get("teacher_step" if distill else "start_from_step")
        start = find_sft_start(runs_root, step if isinstance(step, int) else None)
        if start is None:
            if distill:
                raise ConfigurationError(
                    f"distill needs a teacher: no finished SFT run under {runs_root}; run "
                    f"`crucible-train train sft` first, or set {key}"
                )
            say(
                f"{options.recipe}: no finished SFT run under {runs_root}; "
                "starting from a new model"
            )
            return StartChoice(role=role)
        sft_config = read_json(start.run_dir / CONFIG_FILE)
        mismatches = format_mismatches(sft_config, data)
        if mismatches:
            who = "teacher and student" if distill else "the SFT run and this run"
            raise ConfigurationError(
                f"{who} must use the same chat format (renderer and tokenizer), but "
                f"{start.run_dir} differs: " + "; ".join(mismatches)
            )
        if distill:
            _check_teacher_student(sft_config, data, settings)
    if start is None:
        return StartChoice(role=role)
    updates = {key: _start_path(start.record, data, port)}
    if distill and not settings.get("student"):
        # No student overrides: the student starts from the SFT checkpoint too.
        student_key = f"training.{_backend_of(data, 'training')}.model_path"
        updates[student_key] = _start_path(start.record, data, "training")
    say(
        f"{options.recipe}: {role} from SFT run {start.run_dir} checkpoint "
        f"{start.record.name!r} (step {start.record.step})"
    )
    return StartChoice(started_from=start, role=role, updates=updates)


def _describes_trained_model(data: Mapping[str, Any]) -> bool:
    """``model_info`` selects the training backend, and one that answers offline."""
    backend = _backend_of(data, MODEL_INFO)
    return backend == _backend_of(data, "training") and backend in OFFLINE_MODEL_INFO


def _model_info_updates(data: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """``model_info.<backend>`` keys that differ from the trained model's settings.

    The trained model's settings are ``training.<backend>`` with the plan's own
    ``updates`` applied (student shape, SFT checkpoint); run-directory keys are left out.
    """
    backend = _backend_of(data, "training")
    prefix = f"training.{backend}."
    trained = dict(data.get("training", {}).get(backend, {}))
    trained.update({k[len(prefix) :]: v for k, v in updates.items() if k.startswith(prefix)})
    described = data.get(MODEL_INFO, {}).get(backend, {})
    return {
        f"{MODEL_INFO}.{backend}.{name}": trained[name]
        for name in described
        if name in trained
        and prefix + name not in RUN_DIR_KEYS
        and json.dumps(described[name]) != json.dumps(trained[name])
    }


# --- configuration comparisons ---------------------------------------------------------


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def _normalised(config: Mapping[str, Any]) -> Any:
    """The JSON round trip ``config.json`` went through (tuples → lists, ...)."""
    return json.loads(json.dumps(dump_config(config), sort_keys=True))


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], *, recipe: str
) -> list[str]:
    """Dotted keys whose values differ between a run's ``config.json`` and ``current``.

    Keys naming the run directory (:data:`RUN_DIR_KEYS`), the blocks of
    :data:`DESCRIPTIVE_PORTS` and the ``train`` blocks of other recipes are ignored. Each
    entry reads ``key: saved -> current``.
    """
    others = {f"{TRAIN_KEY}.{name}" for name in TRAIN_RECIPES if name != recipe}
    ignored = others | DESCRIPTIVE_PORTS

    def relevant(key: str) -> bool:
        return key not in RUN_DIR_KEYS and not any(
            key == other or key.startswith(other + ".") for other in ignored
        )

    old = {k: v for k, v in _flatten(_normalised(saved)).items() if relevant(k)}
    new = {k: v for k, v in _flatten(_normalised(current)).items() if relevant(k)}
    missing = object()
    out = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            shown_before = "(absent)" if before is missing else json.dumps(before)
            shown_after = "(absent)" if after is missing else json.dumps(after)
            out.append(f"{key}: {shown_before} -> {shown_after}")
    return out


def _format_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The renderer and the selected tokenizer with its settings."""
    tokenizer = config.get("tokenizer")
    train = config.get(TRAIN_KEY)
    renderer = train.get("renderer") if isinstance(train, Mapping) else None
    if not isinstance(tokenizer, Mapping):
        return {"renderer": renderer, "tokenizer": None}
    backend = tokenizer.get("backend")
    return {
        "renderer": renderer,
        "tokenizer": {"backend": backend, str(backend): tokenizer.get(str(backend))},
    }


def format_mismatches(sft_config: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Where an SFT run's chat format (renderer, tokenizer) differs from ``current``'s."""
    return config_differences(_format_of(sft_config), _format_of(current), recipe="")


def _local_vocab(config: Mapping[str, Any]) -> int | None:
    training = config.get("training")
    local = training.get(LOCAL_TORCH) if isinstance(training, Mapping) else None
    vocab = local.get("vocab_size") if isinstance(local, Mapping) else None
    return vocab if isinstance(vocab, int) else None


def _check_teacher_student(
    sft_config: Mapping[str, Any], current: Mapping[str, Any], settings: Mapping[str, Any]
) -> None:
    """The distill recipe's own check: same renderer and vocabulary size."""
    student = settings.get("student")
    student_vocab = student.get("vocab_size") if isinstance(student, Mapping) else None
    teacher_vocab = _local_vocab(sft_config)
    if student_vocab is None:
        student_vocab = _local_vocab(current)
    teacher_train = sft_config.get(TRAIN_KEY)
    current_train = current.get(TRAIN_KEY)
    if (
        isinstance(teacher_train, Mapping)
        and isinstance(current_train, Mapping)
        and isinstance(teacher_vocab, int)
        and isinstance(student_vocab, int)
    ):
        check_same_format(
            str(teacher_train.get("renderer")),
            str(current_train.get("renderer")),
            teacher_vocab,
            student_vocab,
        )
