"""``crucible-train train sft|rl|dpo|distill`` (entry-point layer): the main job.

``crucible-train train RECIPE [--config FILE] [key=value ...] [--run-dir DIR] [--resume]
[--fresh]`` loads the configuration (the recipe's settings are ``train.<recipe>``), picks
a run directory, wires the ports from the container into a
:class:`~crucible_train.core.training.job.JobContext` and calls the recipe's
``run_<recipe>_job``.

* **Run directory**: ``--run-dir DIR``, or ``<train.runs_root>/<recipe>-<UTC timestamp>``
  (``sft-20260101-120000``). Every run writes ``metrics.jsonl``, ``config.json`` (the
  resolved configuration, secrets redacted), ``checkpoints.jsonl``, ``checkpoints/``
  (``training.local_torch.checkpoint_dir`` is pointed there) and, at the end,
  ``plots/<family>.png``. ``metrics.run_dir`` is pointed at the run directory.
* **Resume**: ``--resume`` continues ``--run-dir DIR`` or, without it, the latest
  ``<runs_root>/<recipe>-*`` run. The run's ``config.json`` must match the new
  configuration (run-directory keys and other recipes' blocks aside); otherwise the
  command refuses and names every key that differs.
* **Start from SFT**: ``rl``, ``dpo`` and ``distill`` start from the latest finished
  ``<runs_root>/sft-*`` run (its ``final`` checkpoint, or the one at the recipe's
  ``start_from_step`` when it has that setting; ``distill``: ``teacher_step``): ``rl``/``dpo``
  load its weights (``training.local_torch.model_path``); ``distill`` uses it as the
  TEACHER (``sampling.local_torch.model_path``) and trains a fresh student with
  ``train.distill.student`` applied to ``training.local_torch`` (an empty ``student``
  starts the student from the same checkpoint). The SFT run must use the same renderer
  and tokenizer (and, for ``distill``, vocabulary size). An explicitly configured
  ``model_path`` wins; ``--fresh`` skips the search. The choice is printed and saved in
  ``started_from.json`` so that ``--resume`` reuses it.
* **Ctrl-C**: the first SIGINT asks the loop to stop; it saves an ``interrupted-*``
  checkpoint and the command exits with 130 and prints how to resume. A second SIGINT
  aborts at once.

Progress goes to stderr (a live bar on a terminal, an occasional plain line otherwise);
the summary table to stdout. The ``console`` metrics sink's per-step tables are left out
when other sinks are listed (``--console-metrics`` keeps them). Exit codes: 0 done,
130 interrupted, 2 usage/configuration error, 1 unexpected error (reported by
:mod:`crucible_train.cli`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar
from rich.table import Table

from crucible_train.container import (
    TRAIN_KEY,
    TRAIN_RECIPES,
    ResolvedConfig,
    container_from_config,
    load_config,
    run_store,
)
from crucible_train.core.config_dump import dump_config
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.core.training.distill import check_same_format
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.errors import ConfigurationError, CrucibleError, PortError
from crucible_train.plots import write_plots
from crucible_train.recipes.distill import DEFAULT_STUDENT

__all__ = [
    "EXIT_BACKEND_FAILED",
    "EXIT_INTERRUPTED",
    "ConsoleProgress",
    "SftStart",
    "TrainOptions",
    "add_train_parser",
    "config_differences",
    "find_sft_start",
    "format_mismatches",
    "latest_run",
    "new_run_dir",
    "run_train",
    "train_options_from_args",
]

EXIT_INTERRUPTED = 130
LOCAL_TORCH = "local_torch"
EXIT_BACKEND_FAILED = 4
"""A backend (training, sampling, ...) failed mid-run; the run directory can be resumed."""
CONFIG_FILE = "config.json"
STARTED_FROM_FILE = "started_from.json"
CHECKPOINTS_DIR = "checkpoints"
SFT = "sft"
DISTILL = "distill"
CONSOLE_SINK = "console"
# Keys that name the run directory itself: they differ between runs by design.
RUN_DIR_KEYS = frozenset({"metrics.run_dir", "training.local_torch.checkpoint_dir"})


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


def add_train_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    debug: argparse.ArgumentParser,
) -> None:
    """Add ``train RECIPE ...`` to the command's subparsers."""
    command = commands.add_parser(
        "train",
        help="run a training recipe (sft, rl, dpo, distill) into a run directory",
        description="Train with the recipe's settings from train.<recipe> in containers.yaml. "
        "Writes metrics.jsonl, config.json, checkpoints.jsonl, checkpoints/ and plots/ into "
        "the run directory. Ctrl-C saves a checkpoint and exits 130; --resume continues. "
        "Exit 0 when done, 2 on a configuration problem.",
        parents=[debug],
    )
    command.add_argument(
        "recipe", choices=list(TRAIN_RECIPES), metavar="RECIPE", help="sft, rl, dpo or distill"
    )
    command.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides applied last, e.g. train.sft.max_steps=20",
    )
    command.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file merged over the packaged containers.yaml (relative to this directory)",
    )
    command.add_argument(
        "--run-dir",
        metavar="DIR",
        help="run directory (default: <train.runs_root>/<recipe>-<UTC timestamp>)",
    )
    command.add_argument(
        "--resume",
        action="store_true",
        help="continue --run-dir DIR (default: the latest run of this recipe) from its last "
        "checkpoint; the configuration must be unchanged",
    )
    command.add_argument(
        "--fresh",
        action="store_true",
        help="rl/dpo: do not start from the latest SFT run",
    )
    command.add_argument(
        "--console-metrics",
        action="store_true",
        help="keep the console sink's per-step tables (by default the progress bar and the "
        "summary replace them when other sinks are listed)",
    )


def train_options_from_args(args: Any) -> TrainOptions:
    """Build :class:`TrainOptions` from the ``argparse`` namespace of ``crucible-train train``."""
    return TrainOptions(
        recipe=args.recipe,
        config_file=args.config,
        overrides=tuple(args.overrides),
        run_dir=args.run_dir,
        resume=args.resume,
        fresh=args.fresh,
        console_metrics=args.console_metrics,
    )


# --- run directories -------------------------------------------------------------------


def new_run_dir(runs_root: Path, recipe: str, now: datetime | None = None) -> Path:
    """``<runs_root>/<recipe>-<UTC YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... if taken."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    candidate = runs_root / f"{recipe}-{stamp}"
    number = 2
    while candidate.exists():
        candidate = runs_root / f"{recipe}-{stamp}-{number}"
        number += 1
    return candidate


def _runs_of(runs_root: Path, recipe: str) -> list[Path]:
    """Run directories of ``recipe``, newest first (the timestamped names sort by time)."""
    if not runs_root.is_dir():
        return []
    runs = [p for p in runs_root.glob(f"{recipe}-*") if p.is_dir()]

    def key(path: Path) -> tuple[str, int]:
        # "<date>-<time>" or "<date>-<time>-<n>": by the stamp, then the suffix.
        parts = path.name[len(recipe) + 1 :].split("-")
        suffix = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 1
        return "-".join(parts[:2]), suffix

    return sorted(runs, key=key, reverse=True)


def latest_run(runs_root: Path, recipe: str) -> Path | None:
    """The newest ``<runs_root>/<recipe>-*`` run directory, or ``None``."""
    runs = _runs_of(runs_root, recipe)
    return runs[0] if runs else None


@attrs.frozen(kw_only=True)
class SftStart:
    """The SFT checkpoint a later recipe starts from.

    Attributes:
        run_dir: the SFT run directory.
        record: the checkpoint record (its ``sampler_path`` holds the weights).
    """

    run_dir: Path
    record: CheckpointRecord

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``started_from.json``)."""
        return {"run_dir": str(self.run_dir), "record": self.record.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SftStart:
        """Parse :meth:`to_dict`'s output."""
        return cls(
            run_dir=Path(str(data["run_dir"])),
            record=CheckpointRecord.from_dict(data["record"], STARTED_FROM_FILE),
        )


def find_sft_start(runs_root: Path, start_from_step: int | None = None) -> SftStart | None:
    """The latest finished SFT run's checkpoint to start from, or ``None`` (no finished run).

    Args:
        runs_root: holds the ``sft-*`` run directories.
        start_from_step: take that run's record at this step instead of ``final``.

    Raises:
        ConfigurationError: the latest finished run has no checkpoint with weights at
            ``start_from_step`` (the message lists the steps it has).
    """
    for run in _runs_of(runs_root, SFT):
        records = CheckpointLog(run_store(run)).records()
        final = [r for r in records if r.final and r.sampler_path is not None]
        if not final:
            continue  # unfinished or interrupted: not a starting point
        if start_from_step is None:
            return SftStart(run_dir=run, record=final[-1])
        usable = [r for r in records if r.sampler_path is not None]
        for record in reversed(usable):
            if record.step == start_from_step:
                return SftStart(run_dir=run, record=record)
        steps = ", ".join(str(r.step) for r in usable)
        raise ConfigurationError(
            f"start_from_step: the latest finished SFT run {run} has no checkpoint with "
            f"weights at step {start_from_step}; it has steps {steps}"
        )
    return None


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

    Keys naming the run directory (:data:`RUN_DIR_KEYS`) and the ``train`` blocks of other
    recipes are ignored. Each entry reads ``key: saved -> current``.
    """
    others = {f"{TRAIN_KEY}.{name}" for name in TRAIN_RECIPES if name != recipe}

    def relevant(key: str) -> bool:
        return key not in RUN_DIR_KEYS and not any(
            key == other or key.startswith(other + ".") for other in others
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not JSON ({exc.msg})") from None


# --- progress --------------------------------------------------------------------------

_MAIN_METRICS = ("nll", "loss", "reward", "accuracy", "kl", "margin")


def _headline(metrics: Mapping[str, float], limit: int = 4) -> str:
    """A few main metrics as ``name=value`` (losses, rewards, accuracies, KL first)."""
    candidates = [
        name
        for name in metrics
        if any(word in name for word in _MAIN_METRICS)
        and not name.endswith("/weight")
        and not name.startswith("num_")
    ]
    ranked = sorted(
        candidates,
        key=lambda name: next(i for i, w in enumerate(_MAIN_METRICS) if w in name),
    )
    shown = ranked[:limit]
    if "lr" in metrics and len(shown) < limit:
        shown.append("lr")
    return " ".join(f"{name}={metrics[name]:.4g}" for name in shown)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ConsoleProgress:
    """:class:`~crucible_train.core.training.progress.Progress` on a console.

    On a terminal: a live rich bar with steps, elapsed time, ETA and the latest main
    metrics. Otherwise (a log file, CI): a plain line at the start, then at most one every
    ``every_s`` seconds, and one for the last step.

    Args:
        stream: where to write (stderr by default).
        is_terminal: force the terminal or plain mode (default: ask the stream).
        every_s: plain mode: seconds between progress lines.
        clock: monotonic clock in seconds (tests pass a fake).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        is_terminal: bool | None = None,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._console = Console(file=self._stream, force_terminal=is_terminal)
        self._live = self._console.is_terminal if is_terminal is None else is_terminal
        self._every_s = every_s
        self._clock = clock
        self._bar: RichBar | None = None
        self._task: Any = None
        self._total = 0
        self._first = 0
        self._started = 0.0
        self._last_line = -math.inf
        self._description = ""

    def start(self, total_steps: int, first_step: int, description: str) -> None:
        """Show the bar (or the first plain line)."""
        self._total, self._first, self._description = total_steps, first_step, description
        self._started = self._clock()
        if self._live:
            self._bar = RichBar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=self._console,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                description, total=total_steps, completed=first_step, metrics=""
            )
        else:
            where = f" from step {first_step}" if first_step else ""
            self._print(f"{description}: {total_steps} steps{where}")
            self._last_line = self._started

    def advance(self, step: int, metrics: Mapping[str, float]) -> None:
        """Update the bar (or print a plain line when one is due)."""
        done = step + 1
        if self._bar is not None:
            self._bar.update(self._task, completed=done, metrics=_headline(metrics))
            return
        now = self._clock()
        if done < self._total and now - self._last_line < self._every_s:
            return
        self._last_line = now
        rate = (done - self._first) / (now - self._started) if now > self._started else 0.0
        eta = (self._total - done) / rate if rate > 0 else math.inf
        percent = 100.0 * done / self._total if self._total else 100.0
        self._print(
            f"{self._description} step {done}/{self._total} ({percent:.0f}%) "
            f"elapsed {_duration(now - self._started)} eta {_duration(eta)} "
            f"{_headline(metrics)}".rstrip()
        )

    def note(self, message: str) -> None:
        """Print ``message`` (above the bar on a terminal)."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            self._print(message)

    def finish(self) -> None:
        """Remove the live display (the last state stays on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _print(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


@contextmanager
def _sigint_stops(stop: threading.Event, say: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C sets ``stop``; the second raises :class:`KeyboardInterrupt`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say("stopping: finishing the submitted steps and saving a checkpoint (Ctrl-C again aborts)")

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --- the command -----------------------------------------------------------------------


def _quoted(value: object) -> str:
    """A YAML scalar for a dotted override (JSON strings are YAML)."""
    return json.dumps(value)


@attrs.define
class _Plan:
    """What the command decided before building anything."""

    run_dir: Path
    overrides: list[str]
    started_from: SftStart | None = None
    role: str = "weights"


def _plan(options: TrainOptions, base: ResolvedConfig, say: Callable[[str], None]) -> _Plan:
    data = base.as_dict()
    train = data.get(TRAIN_KEY, {})
    runs_root = Path(str(train.get("runs_root", "runs")))
    recipe_settings = train.get(options.recipe, {})
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
    log = CheckpointLog(run_store(run_dir))
    if options.resume:
        if not (run_dir / CONFIG_FILE).exists():
            raise ConfigurationError(f"--resume: {run_dir} holds no run ({CONFIG_FILE} missing)")
    elif log.records():
        raise ConfigurationError(
            f"--run-dir: {run_dir} already holds a run; add --resume to continue it, "
            "or choose another directory"
        )
    overrides = list(options.overrides)
    plan = _Plan(run_dir=run_dir, overrides=overrides)
    if options.recipe == DISTILL:
        student = recipe_settings.get("student") or {}
        if isinstance(student, Mapping) and student:
            backend = _backend_of(data, "training")
            if backend == "noop":  # nothing to apply the settings to; keep them visible
                backend = LOCAL_TORCH
            if backend != LOCAL_TORCH and dict(student) == dict(DEFAULT_STUDENT):
                raise ConfigurationError(
                    "train.distill.student holds local-engine settings (a fresh small model), "
                    f"but training.backend is {backend!r}: set train.distill.student={{}} to "
                    "start the student from the SFT checkpoint, or give the student's "
                    f"training.{backend} settings there (e.g. {{base_model: ...}})"
                )
            overrides += [f"training.{backend}.{k}={_quoted(v)}" for k, v in student.items()]
    if options.recipe != SFT:
        _plan_start(options, data, plan, runs_root, recipe_settings, say)
    sinks = data.get("metrics", {}).get("sinks", [])
    if not options.console_metrics and CONSOLE_SINK in sinks and len(sinks) > 1:
        # The live bar and the summary table replace the per-step console tables.
        overrides.append(f"metrics.sinks={_quoted([s for s in sinks if s != CONSOLE_SINK])}")
    overrides += [
        f"metrics.run_dir={_quoted(str(run_dir))}",
        f"training.local_torch.checkpoint_dir={_quoted(str(run_dir / CHECKPOINTS_DIR))}",
    ]
    return plan


def _backend_failure(exc: PortError, recipe: str, run_dir: Path) -> str:
    """The message for a backend that failed mid-run: what failed and how to continue."""
    lines = [f"error: {recipe}: the backend failed ({type(exc).__name__}): {exc}"]
    try:
        last = CheckpointLog(run_store(run_dir)).last_resumable()
    except CrucibleError:
        last = None
    if last is None:
        lines.append(
            "no resumable checkpoint was saved yet; fix the backend and run the command "
            "again (or resume, which starts this run directory from the beginning):"
        )
    else:
        lines.append(
            f"the last resumable checkpoint is {last.name!r} (step {last.step}); "
            "once the backend is back, continue with:"
        )
    lines.append(f"  crucible-train train {recipe} --run-dir {run_dir} --resume")
    return "\n".join(lines)


def _backend_of(data: Mapping[str, Any], port: str) -> str:
    """The backend selected for ``port`` in the configuration tree ``data``."""
    section = data.get(port)
    backend = section.get("backend") if isinstance(section, Mapping) else None
    return backend if isinstance(backend, str) else LOCAL_TORCH


def _start_path(record: CheckpointRecord, data: Mapping[str, Any], port: str) -> str | None:
    """Which saved path of an SFT checkpoint ``port``'s backend starts from.

    The local engine loads weights from the sampler directory (a Hugging Face model
    directory) for training and sampling alike; a Tinker training client starts from the
    saved state (``tinker://.../weights/NAME``) and a Tinker sampler from sampler weights.
    """
    if port == "training" and _backend_of(data, port) != LOCAL_TORCH:
        return record.state_path
    return record.sampler_path


def _plan_start(
    options: TrainOptions,
    data: Mapping[str, Any],
    plan: _Plan,
    runs_root: Path,
    recipe_settings: Mapping[str, Any],
    say: Callable[[str], None],
) -> None:
    """rl/dpo/distill: choose the SFT checkpoint to start from (or the teacher)."""
    distill = options.recipe == DISTILL
    port = "sampling" if distill else "training"
    plan.role = "teacher" if distill else "weights"
    key = f"{port}.{_backend_of(data, port)}.model_path"
    start: SftStart | None = None
    if options.resume:
        saved = plan.run_dir / STARTED_FROM_FILE
        if saved.exists():
            start = SftStart.from_dict(_read_json(saved))
    else:
        configured = data.get(port, {}).get(_backend_of(data, port), {}).get("model_path")
        if configured is not None:
            say(f"{options.recipe}: {plan.role} from the configured {key} = {configured}")
            return
        if options.fresh:
            if distill:
                raise ConfigurationError(
                    f"distill needs a teacher: drop --fresh to use the latest SFT run, or set {key}"
                )
            say(f"{options.recipe}: --fresh: starting from a new random model")
            return
        step = recipe_settings.get("teacher_step" if distill else "start_from_step")
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
            return
        sft_config = _read_json(start.run_dir / CONFIG_FILE)
        mismatches = format_mismatches(sft_config, data)
        if mismatches:
            who = "teacher and student" if distill else "the SFT run and this run"
            raise ConfigurationError(
                f"{who} must use the same chat format (renderer and tokenizer), but "
                f"{start.run_dir} differs: " + "; ".join(mismatches)
            )
        if distill:
            _check_teacher_student(sft_config, data, recipe_settings)
    if start is None:
        return
    plan.started_from = start
    plan.overrides.append(f"{key}={_quoted(_start_path(start.record, data, port))}")
    if distill and not recipe_settings.get("student"):
        # No student overrides: the student starts from the SFT checkpoint too.
        student_key = f"training.{_backend_of(data, 'training')}.model_path"
        plan.overrides.append(
            f"{student_key}={_quoted(_start_path(start.record, data, 'training'))}"
        )
    say(
        f"{options.recipe}: {plan.role} from SFT run {start.run_dir} checkpoint "
        f"{start.record.name!r} (step {start.record.step})"
    )


def _local_vocab(config: Mapping[str, Any]) -> int | None:
    training = config.get("training")
    local = training.get("local_torch") if isinstance(training, Mapping) else None
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


def _summary(
    result: LoopResult,
    run_dir: Path,
    seconds: float,
    plots: Sequence[Path],
) -> Table:
    table = Table(title="training summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
    status = "interrupted" if result.interrupted else "finished"
    table.add_row("status", status)
    table.add_row("steps", f"{result.steps_done}/{result.total_steps}")
    if result.resumed_from is not None:
        table.add_row("resumed at step", str(result.resumed_from))
    table.add_row("run dir", str(run_dir))
    records = CheckpointLog(run_store(run_dir)).records()
    last = result.final_record.name if result.final_record is not None else "-"
    table.add_row("checkpoints", f"{len(records)} (last: {last})")
    table.add_row("time", _duration(seconds))
    if plots:
        table.add_row("plots", ", ".join(p.name for p in plots))
    for name in sorted(result.last_metrics):
        table.add_row(name, f"{result.last_metrics[name]:.6g}")
    return table


def run_train(
    options: TrainOptions,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    progress: ConsoleProgress | None = None,
) -> int:
    """Run the ``train`` command; see the module docstring.

    Returns:
        0 finished, 130 interrupted (Ctrl-C; a resumable checkpoint was saved).

    Raises:
        ConfigurationError: invalid configuration, unknown or unavailable recipe, a run
            directory that does not fit (``--resume`` on a changed configuration, ...).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    recipe = TRAIN_RECIPES.get(options.recipe)
    if recipe is None:
        raise ConfigurationError(
            f"unknown recipe {options.recipe!r}; valid: {', '.join(TRAIN_RECIPES)}"
        )
    if options.run_dir is not None and not options.run_dir.strip():
        raise ConfigurationError("--run-dir: empty directory name")
    bar = progress if progress is not None else ConsoleProgress(err)

    def say(message: str) -> None:
        bar.note(message)

    base = load_config(options.config_file, options.overrides)
    schema = recipe.load_config_class()
    plan = _plan(options, base, say)
    resolved = load_config(options.config_file, plan.overrides)
    current = dump_config(resolved.as_dict(), secrets=resolved.secret_values())
    run_dir = plan.run_dir
    if options.resume:
        differences = config_differences(
            _read_json(run_dir / CONFIG_FILE), current, recipe=options.recipe
        )
        if differences:
            raise ConfigurationError(
                f"--resume: the configuration differs from the one {run_dir} was started "
                "with; resume with the same settings or start a new run:\n" + "\n".join(differences)
            )
    settings = resolved.as_dict(redact_secrets=False)[TRAIN_KEY][options.recipe]
    config = schema(**settings)
    job = recipe.load_job()
    run_dir.mkdir(parents=True, exist_ok=True)
    if plan.started_from is not None and not options.resume:
        (run_dir / STARTED_FROM_FILE).write_text(
            json.dumps({**plan.started_from.to_dict(), "role": plan.role}, indent=2) + "\n",
            encoding="utf-8",
        )
    say(f"{options.recipe}: run directory {run_dir}")
    container = container_from_config(resolved)
    stop = threading.Event()
    started = time.monotonic()
    exit_code = 1
    metrics = None
    try:
        metrics = container.metrics_resource()
        metrics.log_hparams(current)
        training = container.training()
        renderer = get_renderer(resolved.as_dict()[TRAIN_KEY]["renderer"], container.tokenizer())
        context = JobContext(
            training=training,
            renderer=renderer,
            datasets=container.dataset_store(),
            metrics=metrics,
            run_store=run_store(run_dir),
            progress=bar,
            stop=stop,
            resume=options.resume,
            teacher=container.sampling() if options.recipe == DISTILL else None,
            started_from=plan.started_from.record if plan.started_from else None,
        )
        with _sigint_stops(stop, say):
            result: LoopResult = job(context, config)
        exit_code = EXIT_INTERRUPTED if result.interrupted else 0
    except KeyboardInterrupt:
        exit_code = EXIT_INTERRUPTED
        print(
            "aborted; continue from the last saved checkpoint with: "
            f"crucible-train train {options.recipe} --run-dir {run_dir} --resume",
            file=err,
        )
        raise
    except PortError as exc:
        # A backend failure leaves the backend's state unknown (an optimiser step may or
        # may not have run), so nothing is saved now: the last record, written only after
        # its state was complete, is where --resume continues.
        exit_code = EXIT_BACKEND_FAILED
        print(_backend_failure(exc, options.recipe, run_dir), file=err)
    finally:
        if metrics is not None:
            metrics.close(exit_code=exit_code)
        container.shutdown_resources()
    plots: list[Path] = []
    try:
        plots = write_plots(run_dir)
    except ConfigurationError as exc:
        print(f"warning: plots skipped: {exc}", file=err)
    if exit_code == EXIT_BACKEND_FAILED:
        return exit_code
    # Wide enough that the run directory is never folded (it is copied from here).
    width = max(100, Console(file=out).width, len(str(run_dir)) + 30)
    Console(file=out, width=width).print(
        _summary(result, run_dir, time.monotonic() - started, plots)
    )
    if result.interrupted:
        print(
            f"interrupted at step {result.steps_done}/{result.total_steps}; continue with: "
            f"crucible-train train {options.recipe} --run-dir {run_dir} --resume",
            file=err,
        )
    return exit_code
