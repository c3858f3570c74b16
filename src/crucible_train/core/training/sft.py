"""Supervised fine-tuning: weighted cross-entropy on rendered conversations, pipelined.

Each step submits ``forward_backward`` and ``optim_step`` and returns at once; results are
collected ``submit_ahead`` steps later, so the backend always has the next batch queued
(the un-pipelined loop would idle the backend while it waits for each result).

Checkpoints and resume: a periodic ``save_state`` is submitted right after the step it
follows (the backend runs calls in order, so the state is exactly "after step N"); its
record, which names the NEXT step, is written only once the state is saved AND every
earlier step's metrics are logged. ``resume=True`` loads the last record's state, rewinds
the metric rows of the steps it will re-run (through the run store), and continues: a run
killed at any moment and resumed ends with the same weights and metric rows as an
uninterrupted one (time-based metrics aside).

The data comes rendered (datums) from the caller, a recipe of :mod:`crucible_train.recipes`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

import attrs
import numpy as np

from crucible_train.core.evaluation.evaluators import EvaluatorRunner, compute_mean_nll
from crucible_train.core.scheduling import lr_at, parse_schedule
from crucible_train.core.training.checkpoints import CheckpointLog
from crucible_train.core.training.data import batch_indices
from crucible_train.core.training.job import (
    LoopResult,
    close_epoch_loop,
    record_epoch_checkpoint,
)
from crucible_train.core.training.optim import ScheduledAdamW
from crucible_train.core.training.progress import NullProgress, Progress
from crucible_train.core.training.validators import (
    finite_positive_problem,
    number_problem,
    whole_problem,
)
from crucible_train.errors import ConfigurationError
from crucible_train.ports.metrics import MetricsSink
from crucible_train.ports.run_store import RunStore
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import TrainingClient
from crucible_train.types import Datum, ForwardBackwardOutput, OptimStepResponse

__all__ = ["SftLoopConfig", "run_sft"]


@attrs.frozen(kw_only=True)
class SftLoopConfig(ScheduledAdamW):
    """Settings of the supervised loop (:func:`run_sft`); a recipe's config adds its data.

    The defaults are those of ``crucible-train train sft`` on the embedded default model
    (AdamW 1e-3, batch 64, 600 steps with warmup and linear decay).

    Args:
        learning_rate: peak AdamW learning rate.
        lr_schedule: ``constant``, ``linear`` or ``cosine`` after the warmup.
        warmup_steps: linear warmup from 0 over this many steps.
        batch_size: datums per step.
        num_epochs: passes over the data (``max_steps`` may end the run earlier).
        max_steps: stop after this many steps; ``None`` runs every epoch.
        seed: seeds the per-epoch shuffles.
        save_every: save a resumable checkpoint every N steps; 0 only at the end.
        submit_ahead: steps submitted before the oldest result is awaited (1 pipelines).
        beta1: AdamW beta1.
        beta2: AdamW beta2.
        eps: AdamW epsilon.
        weight_decay: AdamW decoupled weight decay.
        grad_clip_norm: clip the global gradient norm to this (0: no clipping).

    Raises:
        ConfigurationError: fields are out of range (the message names every one).
    """

    learning_rate: float = 1e-3
    lr_schedule: str = "linear"
    warmup_steps: int = 50
    batch_size: int = 64
    num_epochs: int = 5
    max_steps: int | None = 600
    seed: int = 0
    save_every: int = 100
    submit_ahead: int = 1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip_norm: float = 1.0

    def __attrs_post_init__(self) -> None:
        found = [problem for problem in self.problems() if problem]
        if found:
            raise ConfigurationError("invalid sft config: " + "; ".join(found))

    def problems(self) -> list[str | None]:
        """One entry per check, a message where a field is invalid; a subclass that adds
        fields extends the list."""
        problems = [
            finite_positive_problem("learning_rate", self.learning_rate),
            whole_problem("warmup_steps", self.warmup_steps, 0),
            whole_problem("batch_size", self.batch_size, 1),
            whole_problem("num_epochs", self.num_epochs, 1),
            None if self.max_steps is None else whole_problem("max_steps", self.max_steps, 1),
            whole_problem("seed", self.seed, 0),
            whole_problem("save_every", self.save_every, 0),
            whole_problem("submit_ahead", self.submit_ahead, 0),
        ]
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and 0 <= value < 1
            problems.append(number_problem(name, value, ok, "in [0, 1)"))
        for name, strict in (("eps", True), ("weight_decay", False), ("grad_clip_norm", False)):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and math.isfinite(value)
            ok = ok and (value > 0 if strict else value >= 0)
            problems.append(number_problem(name, value, ok, "> 0" if strict else ">= 0"))
        try:
            parse_schedule(self.lr_schedule)
        except ConfigurationError as exc:
            problems.append(f"lr_schedule: {exc}")
        return problems


@attrs.define
class _Pending:
    step: int
    epoch: int
    batch: int
    datums: Sequence[Datum]
    learning_rate: float
    forward_backward: Future[ForwardBackwardOutput]
    optim: Future[OptimStepResponse]
    save: Future[str] | None
    sampler_save: Future[str] | None
    save_name: str | None


def _train_metrics(p: _Pending, elapsed: float, total_steps: int) -> dict[str, float]:
    out = p.forward_backward.result()
    optim = p.optim.result()
    logprobs = [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]
    weights = [d.loss_fn_inputs["weights"].to_numpy() for d in p.datums]
    tokens = sum(d.model_input.length for d in p.datums)
    metrics = {
        "train/nll": compute_mean_nll(logprobs, weights),
        "train/tokens_per_s": tokens / elapsed if elapsed > 0 else math.nan,
        "lr": p.learning_rate,
        "epoch": float(p.epoch),
        "progress": (p.step + 1) / total_steps,
        "num_sequences": float(len(p.datums)),
        "num_tokens": float(tokens),
        "num_loss_tokens": float(sum(int(np.count_nonzero(w)) for w in weights)),
    }
    for key, value in optim.metrics.items():
        metrics[f"optim/{key}"] = float(value)
    return {k: v for k, v in metrics.items() if not math.isnan(v)}


def run_sft(
    config: SftLoopConfig,
    *,
    training: TrainingClient,
    train_datums: Sequence[Datum],
    metrics: MetricsSink,
    run_store: RunStore,
    evaluators: EvaluatorRunner | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    resume: bool = False,
    data_metrics: Mapping[str, float] | None = None,
) -> LoopResult:
    """Train ``training`` on ``train_datums``; see the module docstring.

    Args:
        config: loop settings.
        training: the model being trained.
        train_datums: shifted, weighted datums (see :mod:`crucible_train.core.training.data`).
        metrics: where step metrics go (evaluator metrics too, through ``evaluators``).
        run_store: the run's checkpoint records and metric rewind.
        evaluators: run before steps ``0, eval_every, ...`` (pre-update weights) and after
            the last step; sampling evaluators get a snapshot of the current weights.
        progress: live progress reporting.
        stop: when set (Ctrl-C), the loop finishes the submitted steps, saves a
            resumable checkpoint and returns with ``interrupted=True``.
        resume: continue from the last resumable record of ``run_store``; without one, start
            afresh (dropping metric rows a killed earlier attempt logged).
        data_metrics: facts about the data (``data/skipped``), logged at step 0 when the
            run starts from step 0.

    Raises:
        ConfigurationError: no data, or ``batch_size`` larger than the data set.
    """
    progress = progress or NullProgress()
    stop = stop or threading.Event()
    log = CheckpointLog(run_store)
    if not train_datums:
        raise ConfigurationError("the training set is empty after rendering; nothing to train on")
    n_batches = len(batch_indices(len(train_datums), config.batch_size, seed=config.seed, epoch=0))
    total = n_batches * config.num_epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    start, resumed_from = 0, None
    if resume:
        record = log.last_resumable()
        if record is not None and record.final:
            progress.note(
                f"run in {run_store.location} already finished (checkpoint {record.name!r})"
            )
            return LoopResult(
                steps_done=record.step,
                total_steps=total,
                interrupted=False,
                resumed_from=record.step,
                final_record=record,
                last_metrics={},
            )
        if record is not None and record.state_path is not None:
            training.load_state(record.state_path).result()
            start = resumed_from = record.step
            progress.note(f"resumed from checkpoint {record.name!r} at step {start}")
        # Steps from ``start`` on run again and log again: drop what they logged before.
        run_store.rewind_metrics(start)
    if start == 0 and data_metrics:
        metrics.log_metrics(dict(data_metrics), step=0)
    schedule = config.schedule()
    progress.start(total, start, "sft")
    pending: deque[_Pending] = deque()
    last: dict[str, float] = {}
    clock = [time.perf_counter()]

    samplers: list[SamplingClient] = []

    def snapshot() -> SamplingClient:
        path = training.save_weights_for_sampler("eval").result()
        samplers.append(training.create_sampling_client(path))
        return samplers[-1]

    def run_evaluators(step: int, force: bool = False) -> None:
        if evaluators is None:
            return
        try:
            results = evaluators.maybe_run(
                step, training_client=training, sampling_client=snapshot, force=force
            )
        finally:
            while samplers:  # a snapshot serves one evaluation; free its model
                close = getattr(samplers.pop(), "close", None)
                if callable(close):
                    close()
        last.update(results)

    def evaluate(step: int) -> None:
        # Drain first: the evaluation sees the weights after step-1, and metric rows stay
        # in step order (resume truncation relies on it).
        while pending:
            finish(pending.popleft())
        run_evaluators(step)
        clock[0] = time.perf_counter()

    def finish(p: _Pending) -> None:
        now = time.perf_counter()
        step_metrics = _train_metrics(p, now - clock[0], total)
        clock[0] = now
        metrics.log_metrics(step_metrics, step=p.step)
        last.update(step_metrics)
        progress.advance(p.step, last)
        if p.save is not None and p.save_name is not None:
            record_epoch_checkpoint(
                log,
                name=p.save_name,
                state=p.save,
                sampler=p.sampler_save,
                next_step=p.step + 1,
                n_batches=n_batches,
            )

    step = start
    order: list[int] = []
    order_epoch = -1
    while step < total and not stop.is_set():
        epoch, batch = divmod(step, n_batches)
        if epoch != order_epoch:
            order = [
                i
                for b in batch_indices(
                    len(train_datums), config.batch_size, seed=config.seed, epoch=epoch
                )
                for i in b
            ]
            order_epoch = epoch
        if evaluators is not None and evaluators.is_due(step):
            evaluate(step)
        datums = [
            train_datums[i]
            for i in order[batch * config.batch_size : (batch + 1) * config.batch_size]
        ]
        lr = lr_at(config.learning_rate, schedule, step, total)
        fb = training.forward_backward(datums, "cross_entropy")
        optim = training.optim_step(config.adam(lr))
        save_name = None
        save = None
        sampler_save = None
        if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < total:
            save_name = f"{step + 1:06d}"
            save = training.save_state(save_name)
            sampler_save = training.save_weights_for_sampler(save_name)
        pending.append(
            _Pending(
                step=step,
                epoch=epoch,
                batch=batch,
                datums=datums,
                learning_rate=lr,
                forward_backward=fb,
                optim=optim,
                save=save,
                sampler_save=sampler_save,
                save_name=save_name,
            )
        )
        while len(pending) > config.submit_ahead:
            finish(pending.popleft())
        step += 1
    while pending:
        finish(pending.popleft())
    if step >= total and evaluators is not None:
        run_evaluators(total, force=True)
    return close_epoch_loop(
        training,
        log,
        progress,
        step=step,
        total=total,
        n_batches=n_batches,
        num_epochs=config.num_epochs,
        resumed_from=resumed_from,
        last=last,
    )
