"""``crucible-train train sft|rl|dpo|distill``: run a training recipe into a run directory.

``crucible-train train RECIPE [--config FILE] [key=value ...] [--run-dir DIR] [--resume]
[--fresh]`` runs in one direction: the options are parsed into
:class:`~crucible_train.entrypoints.planning.TrainOptions`,
:func:`~crucible_train.entrypoints.planning.plan_run` decides everything (run
directory, resume, start from SFT, configuration; see that module), the container is
built once from the plan's configuration, the ports go into a
:class:`~crucible_train.core.training.job.JobContext` for the recipe's
``run_<recipe>_job``, and the summary is printed.

* **Run directory**: ``--run-dir DIR``, or ``<train.runs_root>/<recipe>-<UTC timestamp>``
  (``sft-20260101-120000``). Every run writes ``metrics.jsonl``, ``config.json`` (the
  resolved configuration, secrets redacted), ``checkpoints.jsonl``, ``checkpoints/``
  (``training.local_torch.checkpoint_dir`` is pointed there) and, at the end,
  ``plots/<family>.png``; ``started_from.json`` records an SFT starting point so that
  ``--resume`` reuses it.
* **Ctrl-C**: the first SIGINT asks the loop to stop; it saves an ``interrupted-*``
  checkpoint and the command exits with 130 and prints how to resume. A second SIGINT
  aborts at once.
* **Backend failure** mid-run: exit 4 with the backend's words and how to resume.
* **Summary**: status, steps, run directory, checkpoints, time, plots, the model (from
  the ``model_info`` port when it describes the trained model, see
  :mod:`crucible_train.entrypoints.model_facts`) and the last value of every metric.

Progress goes to stderr (a live bar on a terminal, an occasional plain line otherwise);
the summary table to stdout. The ``console`` metrics sink's per-step tables are left out
when other sinks are listed (``--console-metrics`` keeps them). Exit codes: 0 done,
130 interrupted, 4 a backend failed, 2 usage/configuration error, 1 unexpected error
(reported by :mod:`crucible_train.entrypoints.cli.main`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import attrs
from rich.console import Console
from rich.table import Table

from crucible_train.container import TRAIN_RECIPES, container_from_config, run_store
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.checkpoints import CheckpointLog
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.core.training.rewarding import reward_clients
from crucible_train.entrypoints.cli._options import Commands
from crucible_train.entrypoints.model_facts import ModelFacts, ask_model_info
from crucible_train.entrypoints.planning import RunPlan, TrainOptions, plan_run
from crucible_train.entrypoints.plots import write_plots
from crucible_train.entrypoints.progress import ConsoleProgress, format_duration
from crucible_train.entrypoints.run_dirs import STARTED_FROM_FILE
from crucible_train.errors import ConfigurationError, CrucibleError, PortError

__all__ = [
    "EXIT_BACKEND_FAILED",
    "EXIT_INTERRUPTED",
    "add_train_parser",
    "run_train",
    "train_options_from_args",
]

EXIT_INTERRUPTED = 130
EXIT_BACKEND_FAILED = 4
"""A backend (training, sampling, ...) failed mid-run; the run directory can be resumed."""


def add_train_parser(commands: Commands, debug: argparse.ArgumentParser) -> None:
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
    command.set_defaults(handler=_run_from_args)


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


def _run_from_args(args: argparse.Namespace) -> int:
    return run_train(train_options_from_args(args))


def run_train(
    options: TrainOptions,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    progress: ConsoleProgress | None = None,
) -> int:
    """Run the ``train`` command: plan, build the container once, run the job, summarise.

    Returns:
        0 finished, 130 interrupted (Ctrl-C; a resumable checkpoint was saved), 4 a
        backend failed (the message says how to resume).

    Raises:
        ConfigurationError: invalid configuration, unknown or unavailable recipe, a run
            directory that does not fit (``--resume`` on a changed configuration, ...).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    bar = progress if progress is not None else ConsoleProgress(err)
    plan = plan_run(options, say=bar.note)
    _prepare_run_dir(plan)
    bar.note(f"{plan.recipe}: run directory {plan.run_dir}")
    started = time.monotonic()
    ran = _run_job(plan, bar, err)
    plots: list[Path] = []
    try:
        plots = write_plots(plan.run_dir)
    except ConfigurationError as exc:
        print(f"warning: plots skipped: {exc}", file=err)
    if ran.result is None:
        return ran.exit_code
    result = ran.result
    # Wide enough that the run directory (copied from here) and the model are not folded.
    widest = max(len(value) for _, value in [("run dir", str(plan.run_dir)), *_model_rows(ran)])
    width = max(100, Console(file=out).width, widest + 30)
    Console(file=out, width=width).print(
        _summary(result, plan.run_dir, time.monotonic() - started, plots, _model_rows(ran))
    )
    if result.interrupted:
        print(
            f"interrupted at step {result.steps_done}/{result.total_steps}; continue with: "
            f"crucible-train train {plan.recipe} --run-dir {plan.run_dir} --resume",
            file=err,
        )
    return ran.exit_code


@attrs.frozen(kw_only=True)
class _Ran:
    """How the job ended: its result (``None`` when a backend failed) and the model."""

    exit_code: int
    result: LoopResult | None
    model: ModelFacts | None = None


def _model_rows(ran: _Ran) -> list[tuple[str, str]]:
    return ran.model.rows() if ran.model is not None else []


def _prepare_run_dir(plan: RunPlan) -> None:
    """Create the run directory; a new run records the SFT checkpoint it starts from."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    if plan.started_from is not None and not plan.resume:
        (plan.run_dir / STARTED_FROM_FILE).write_text(
            json.dumps({**plan.started_from.to_dict(), "role": plan.role}, indent=2) + "\n",
            encoding="utf-8",
        )


def _run_job(plan: RunPlan, bar: ConsoleProgress, err: TextIO) -> _Ran:
    """Build the container from the plan, run the recipe's job in it, close everything."""
    container = container_from_config(plan.config)
    # Only a reward that needs a client (judge, semantic_similarity) gets one built.
    clients = reward_clients(getattr(plan.recipe_config, "reward", None)) | reward_clients(
        getattr(plan.recipe_config, "test_reward", None)
    )
    stop = threading.Event()
    exit_code = 1
    metrics = None
    try:
        metrics = container.metrics_resource()
        metrics.log_hparams(plan.logged_config)
        context = JobContext(
            training=container.training(),
            renderer=get_renderer(plan.renderer, container.tokenizer()),
            datasets=container.dataset_store(),
            metrics=metrics,
            run_store=run_store(plan.run_dir),
            progress=bar,
            stop=stop,
            resume=plan.resume,
            teacher=container.sampling() if plan.needs_teacher else None,
            started_from=plan.started_from.record if plan.started_from else None,
            llm=container.llm() if "llm" in clients else None,
            embedding=container.embedding() if "embedding" in clients else None,
        )
        with _sigint_stops(stop, bar.note):
            result: LoopResult = plan.job(context, plan.recipe_config)
        exit_code = EXIT_INTERRUPTED if result.interrupted else 0
        # Asked after the job, so it cannot touch the run's weights or metric rows.
        model = ask_model_info(container.model_info) if plan.describe_model else None
        return _Ran(exit_code=exit_code, result=result, model=model)
    except KeyboardInterrupt:
        exit_code = EXIT_INTERRUPTED
        print(
            "aborted; continue from the last saved checkpoint with: "
            f"crucible-train train {plan.recipe} --run-dir {plan.run_dir} --resume",
            file=err,
        )
        raise
    except PortError as exc:
        # A backend failure leaves the backend's state unknown (an optimiser step may or
        # may not have run), so nothing is saved now: the last record, written only after
        # its state was complete, is where --resume continues.
        exit_code = EXIT_BACKEND_FAILED
        print(_backend_failure(exc, plan.recipe, plan.run_dir), file=err)
        return _Ran(exit_code=exit_code, result=None)
    finally:
        if metrics is not None:
            metrics.close(exit_code=exit_code)
        container.shutdown_resources()


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


def _summary(
    result: LoopResult,
    run_dir: Path,
    seconds: float,
    plots: Sequence[Path],
    model: Sequence[tuple[str, str]],
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
    table.add_row("time", format_duration(seconds))
    if plots:
        table.add_row("plots", ", ".join(p.name for p in plots))
    for what, value in model:
        table.add_row(what, value)
    for name in sorted(result.last_metrics):
        table.add_row(name, f"{result.last_metrics[name]:.6g}")
    return table
