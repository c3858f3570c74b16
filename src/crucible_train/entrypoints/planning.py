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
* **Start from SFT** (``rl``, ``dpo``): see :func:`choose_start`; the **teacher** of
  ``distill`` (a run directory, a local model directory or Tinker, checked against the
  student): see :func:`~crucible_train.entrypoints.teachers.choose_teacher`.
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
from crucible_train.core.training.checkpoints import CheckpointLog
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.entrypoints.model_facts import OFFLINE_MODEL_INFO
from crucible_train.entrypoints.run_configs import (
    DESCRIPTIVE_PORTS,
    LOCAL_TORCH,
    RUN_DIR_KEYS,
    backend_of,
    check_run_format,
    config_differences,
    format_mismatches,
    start_path,
)
from crucible_train.entrypoints.run_dirs import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    STARTED_FROM_FILE,
    SftStart,
    StartChoice,
    find_sft_start,
    latest_run,
    new_run_dir,
    read_json,
)
from crucible_train.entrypoints.teachers import choose_teacher
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

NOOP = "noop"
SFT = "sft"
DISTILL = "distill"
CONSOLE_SINK = "console"
MODEL_INFO = "model_info"

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


def _student_updates(data: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``train.distill.student`` applied to the selected training backend's settings."""
    student = settings.get("student") or {}
    if not isinstance(student, Mapping) or not student:
        return {}
    backend = backend_of(data, "training")
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


def choose_start(
    options: TrainOptions,
    data: Mapping[str, Any],
    *,
    run_dir: Path,
    runs_root: Path,
    settings: Mapping[str, Any],
    say: Say,
) -> StartChoice:
    """rl/dpo: the SFT checkpoint to start from; distill: the teacher (:func:`choose_teacher`).

    The latest finished ``<runs_root>/sft-*`` run, at its ``final`` checkpoint or at the
    recipe's ``start_from_step``; ``rl``/``dpo`` load its weights. An explicitly configured
    ``model_path`` wins; ``--fresh`` skips the search; ``--resume`` reuses
    ``started_from.json``.

    Args:
        options: the command's options.
        data: the configuration tree (before the plan's overrides).
        run_dir: the run directory (read when resuming).
        runs_root: holds the SFT runs.
        settings: the recipe's ``train.<recipe>`` block.
        say: prints the choice.

    Raises:
        ConfigurationError: an SFT run in another chat format; for ``distill``, see
            :func:`~crucible_train.entrypoints.teachers.choose_teacher`.
    """
    if options.recipe == DISTILL:
        return choose_teacher(
            data,
            resume=options.resume,
            fresh=options.fresh,
            run_dir=run_dir,
            runs_root=runs_root,
            settings=settings,
            say=say,
        )
    port, role = "training", "weights"
    key = f"{port}.{backend_of(data, port)}.model_path"
    start: SftStart | None = None
    if options.resume:
        saved = run_dir / STARTED_FROM_FILE
        if saved.exists():
            start = SftStart.from_dict(read_json(saved))
    else:
        configured = data.get(port, {}).get(backend_of(data, port), {}).get("model_path")
        if configured is not None:
            say(f"{options.recipe}: {role} from the configured {key} = {configured}")
            return StartChoice(role=role)
        if options.fresh:
            say(f"{options.recipe}: --fresh: starting from a new random model")
            return StartChoice(role=role)
        step = settings.get("start_from_step")
        start = find_sft_start(runs_root, step if isinstance(step, int) else None)
        if start is None:
            say(
                f"{options.recipe}: no finished SFT run under {runs_root}; "
                "starting from a new model"
            )
            return StartChoice(role=role)
        check_run_format(
            start.run_dir,
            read_json(start.run_dir / CONFIG_FILE),
            data,
            who="the SFT run and this run",
        )
    if start is None:
        return StartChoice(role=role)
    say(
        f"{options.recipe}: {role} from SFT run {start.run_dir} checkpoint "
        f"{start.record.name!r} (step {start.record.step})"
    )
    return StartChoice(
        started_from=start, role=role, updates={key: start_path(start.record, data, port)}
    )


def _describes_trained_model(data: Mapping[str, Any]) -> bool:
    """``model_info`` selects the training backend, and one that answers offline."""
    backend = backend_of(data, MODEL_INFO)
    return backend == backend_of(data, "training") and backend in OFFLINE_MODEL_INFO


def _model_info_updates(data: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """``model_info.<backend>`` keys that differ from the trained model's settings.

    The trained model's settings are ``training.<backend>`` with the plan's own
    ``updates`` applied (student shape, SFT checkpoint); run-directory keys are left out.
    """
    backend = backend_of(data, "training")
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
