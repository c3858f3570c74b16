"""What every training recipe receives from the command line layer, and what it returns.

The CLI builds a :class:`JobContext` from the container (ports only), then calls the
recipe's ``run_<recipe>_job(context, config)`` (:mod:`crucible_train.recipes`); the recipe
builds its data and evaluators and runs a core loop. Core code never sees the container,
files of adapters or SDKs: what a loop keeps in the run directory goes through
:attr:`JobContext.run_store`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import attrs

from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.checkpoints import (
    CheckpointLog,
    CheckpointRecord,
    record_saved_checkpoint,
    save_closing_checkpoint,
)
from crucible_train.core.training.progress import NullProgress, Progress
from crucible_train.ports.dataset_store import DatasetStore
from crucible_train.ports.embedding import EmbeddingClient
from crucible_train.ports.llm import LLMClient
from crucible_train.ports.metrics import MetricsSink
from crucible_train.ports.run_store import RunStore
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import TrainingClient

__all__ = [
    "JobContext",
    "LoopResult",
    "close_epoch_loop",
    "close_loop",
    "record_epoch_checkpoint",
]


@attrs.frozen(kw_only=True)
class JobContext:
    """The ports and run facts a recipe needs.

    Attributes:
        training: the model being trained (for ``distill``: the student).
        renderer: chat format over the model's tokenizer.
        datasets: reads the datasets named in the recipe's config (any source format).
        metrics: every sink of the run (files, console, wandb, ...).
        run_store: the run's checkpoint records, metric rewind and stored arrays.
        progress: live progress reporting.
        stop: set on Ctrl-C; loops then save a resumable checkpoint and return.
        resume: continue from the last resumable checkpoint of the run.
        teacher: the teacher's sampler (``distill`` only).
        started_from: the checkpoint of an earlier run the weights were loaded from.
        llm: the LLM client, given only when a reward needs it (``judge``).
        embedding: the embedding client, given only when a reward needs it
            (``semantic_similarity``).
    """

    training: TrainingClient
    renderer: Renderer
    datasets: DatasetStore
    metrics: MetricsSink
    run_store: RunStore
    progress: Progress = attrs.field(factory=NullProgress)
    stop: threading.Event = attrs.field(factory=threading.Event)
    resume: bool = False
    teacher: SamplingClient | None = None
    started_from: CheckpointRecord | None = None
    llm: LLMClient | None = None
    embedding: EmbeddingClient | None = None


@attrs.frozen(kw_only=True)
class LoopResult:
    """How a training loop ended.

    Attributes:
        steps_done: the next step that would run (= steps completed in total).
        total_steps: steps the run was configured for.
        interrupted: stopped early (Ctrl-C); a resumable checkpoint was saved.
        resumed_from: the step the run resumed at, ``None`` for a fresh run.
        final_record: the last checkpoint record written (``final`` or ``interrupted-*``).
        last_metrics: the latest value of every metric logged.
    """

    steps_done: int
    total_steps: int
    interrupted: bool
    resumed_from: int | None
    final_record: CheckpointRecord | None
    last_metrics: Mapping[str, float]


def close_loop(
    training: TrainingClient,
    log: CheckpointLog,
    progress: Progress,
    *,
    step: int,
    total: int,
    stopped_at: tuple[int, int],
    finished_at: tuple[int, int],
    resumed_from: int | None,
    last: Mapping[str, float],
    extra: Mapping[str, Any] | None = None,
) -> LoopResult:
    """End a loop after its last submitted step has finished.

    Stopped early (``step < total``): an ``interrupted-NNNNNN`` checkpoint recorded at
    ``stopped_at`` (the next step's epoch and batch). Finished: the ``final`` checkpoint
    (state and sampler) recorded at ``finished_at``. Either way the progress display is
    closed.
    """
    interrupted = step < total
    epoch, batch = stopped_at if interrupted else finished_at
    final = save_closing_checkpoint(
        training,
        log,
        interrupted=interrupted,
        step=step if interrupted else total,
        epoch=epoch,
        batch=batch,
        extra=extra,
    )
    if interrupted:
        progress.note(f"interrupted: saved checkpoint {final.name!r}; continue with --resume")
    progress.finish()
    return LoopResult(
        steps_done=step,
        total_steps=total,
        interrupted=interrupted,
        resumed_from=resumed_from,
        final_record=final,
        last_metrics=dict(last),
    )


def close_epoch_loop(
    training: TrainingClient,
    log: CheckpointLog,
    progress: Progress,
    *,
    step: int,
    total: int,
    n_batches: int,
    num_epochs: int,
    resumed_from: int | None,
    last: Mapping[str, float],
) -> LoopResult:
    """:func:`close_loop` for an epoch-based loop (SFT, DPO): the ``final`` checkpoint is
    epoch ``num_epochs``, batch 0; an interrupted one names the next step's epoch and batch.
    """
    return close_loop(
        training,
        log,
        progress,
        step=step,
        total=total,
        stopped_at=divmod(step, n_batches),
        finished_at=(num_epochs, 0),
        resumed_from=resumed_from,
        last=last,
    )


def record_epoch_checkpoint(
    log: CheckpointLog,
    *,
    name: str,
    state: Future[str],
    sampler: Future[str] | None,
    next_step: int,
    n_batches: int,
) -> CheckpointRecord:
    """Record a periodic save of an epoch-based loop once it completes, naming the next
    step to run as ``(epoch, batch)`` (see :func:`record_saved_checkpoint`)."""
    epoch, batch = divmod(next_step, n_batches)
    return record_saved_checkpoint(
        log,
        name=name,
        state=state,
        sampler=sampler,
        step=next_step,
        epoch=epoch,
        batch=batch,
    )
