"""Supervised fine-tuning: weighted cross-entropy on rendered conversations, pipelined.

Each step submits ``forward_backward`` and ``optim_step`` and returns at once; results are
collected ``submit_ahead`` steps later, so the backend always has the next batch queued
(the un-pipelined loop would idle the backend while it waits for each result).

Checkpoints and resume: a periodic ``save_state`` is submitted right after the step it
follows (the backend runs calls in order, so the state is exactly "after step N"); its
record, which names the NEXT step, is written only once the state is saved AND every
earlier step's metrics are logged. ``resume=True`` loads the last record's state, drops
``metrics.jsonl`` rows of the steps it will re-run, and continues: a run killed at any
moment and resumed ends with the same weights and metric rows as an uninterrupted one
(time-based metrics aside).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from crucible_train.core.evaluation.evaluators import (
    Evaluator,
    EvaluatorRunner,
    NLLEvaluator,
    compute_mean_nll,
)
from crucible_train.core.renderers.messages import TrainOnWhat
from crucible_train.core.scheduling import lr_at, parse_schedule
from crucible_train.core.training.arithmetic import ArithmeticAccuracyEvaluator, ArithmeticTask
from crucible_train.core.training.checkpoints import (
    CheckpointLog,
    truncate_metrics,
)
from crucible_train.core.training.data import (
    batch_indices,
    conversations_to_datums,
    load_conversations,
)
from crucible_train.core.training.job import (
    JobContext,
    LoopResult,
    close_epoch_loop,
    record_epoch_checkpoint,
)
from crucible_train.core.training.optim import ScheduledAdamW
from crucible_train.core.training.progress import NullProgress, Progress
from crucible_train.errors import ConfigurationError
from crucible_train.ports.metrics import MetricsSink
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import TrainingClient
from crucible_train.types import Datum, ForwardBackwardOutput, OptimStepResponse

__all__ = ["ARITHMETIC", "SftConfig", "run_sft", "run_sft_job"]

ARITHMETIC = "arithmetic"
"""The ``dataset`` value naming the built-in arithmetic task."""


def _whole(name: str, value: object, minimum: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return f"{name} must be a whole number >= {minimum}, got {value!r}"
    return None


def _number(name: str, value: object, ok: bool, expected: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not ok:
        return f"{name} must be {expected}, got {value!r}"
    return None


@attrs.frozen(kw_only=True)
class SftConfig(ScheduledAdamW):
    """Settings of supervised fine-tuning (``train sft``; ``key=value`` on the command line).

    The defaults are the reference recipe for the embedded default model on the built-in
    arithmetic task (AdamW 2e-3, batch 64, 600 steps with warmup and linear decay).

    Args:
        learning_rate: peak AdamW learning rate.
        lr_schedule: ``constant``, ``linear`` or ``cosine`` after the warmup.
        warmup_steps: linear warmup from 0 over this many steps.
        batch_size: datums per step.
        num_epochs: passes over the data (``max_steps`` may end the run earlier).
        max_steps: stop after this many steps; ``None`` runs every epoch.
        seed: seeds the per-epoch shuffles and the order of the arithmetic problems.
        eval_every: run the evaluators before steps ``0, N, 2N, ...`` and after the last
            step; 0 runs them only after the last step.
        save_every: save a resumable checkpoint every N steps; 0 only at the end.
        submit_ahead: steps submitted before the oldest result is awaited (1 pipelines).
        beta1, beta2, eps, weight_decay, grad_clip_norm: AdamW settings (clip 0 = off).
        dataset: ``"arithmetic"`` (the built-in task) or a JSONL file of
            ``{"messages": [...]}`` lines, read through the DatasetStore port.
        test_dataset: a JSONL file of held-out conversations for ``test/nll``; for
            ``arithmetic`` the task's held-out split is used when this is ``None``.
        test_size: held-out arithmetic problems evaluated (``test/nll``, ``test/accuracy``).
        max_operand: arithmetic operands range over ``0 .. max_operand``.
        train_on_what: which tokens get weight (a ``TrainOnWhat`` value).
        max_length: keep at most this many tokens of each conversation; ``None`` keeps all.
        normalize_weights: per-example token-mean weights instead of per-token 0/1.
        eval_max_tokens: new tokens sampled per arithmetic answer for ``test/accuracy``.

    Raises:
        ConfigurationError: a field is out of range (the message names it).
    """

    learning_rate: float = 1e-3
    lr_schedule: str = "linear"
    warmup_steps: int = 50
    batch_size: int = 64
    num_epochs: int = 5
    max_steps: int | None = 600
    seed: int = 0
    eval_every: int = 100
    save_every: int = 100
    submit_ahead: int = 1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip_norm: float = 1.0
    dataset: str = "arithmetic"
    test_dataset: str | None = None
    test_size: int = 200
    max_operand: int = 99
    train_on_what: str = "last_assistant_message"
    max_length: int | None = 512
    normalize_weights: bool = False
    eval_max_tokens: int = 8

    def __attrs_post_init__(self) -> None:
        problems = [
            _number(
                "learning_rate",
                self.learning_rate,
                isinstance(self.learning_rate, int | float)
                and math.isfinite(self.learning_rate)
                and self.learning_rate > 0,
                "a finite number > 0",
            ),
            _whole("warmup_steps", self.warmup_steps, 0),
            _whole("batch_size", self.batch_size, 1),
            _whole("num_epochs", self.num_epochs, 1),
            None if self.max_steps is None else _whole("max_steps", self.max_steps, 1),
            _whole("seed", self.seed, 0),
            _whole("eval_every", self.eval_every, 0),
            _whole("save_every", self.save_every, 0),
            _whole("submit_ahead", self.submit_ahead, 0),
            _whole("test_size", self.test_size, 1),
            _whole("max_operand", self.max_operand, 1),
            None if self.max_length is None else _whole("max_length", self.max_length, 2),
            _whole("eval_max_tokens", self.eval_max_tokens, 1),
        ]
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and 0 <= value < 1
            problems.append(_number(name, value, ok, "in [0, 1)"))
        for name, strict in (("eps", True), ("weight_decay", False), ("grad_clip_norm", False)):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and math.isfinite(value)
            ok = ok and (value > 0 if strict else value >= 0)
            problems.append(_number(name, value, ok, "> 0" if strict else ">= 0"))
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            problems.append(f"dataset must be 'arithmetic' or a JSONL path, got {self.dataset!r}")
        if self.test_dataset is not None and (
            not isinstance(self.test_dataset, str) or not self.test_dataset.strip()
        ):
            problems.append(f"test_dataset must be a JSONL path or null, got {self.test_dataset!r}")
        allowed = [item.value for item in TrainOnWhat]
        if self.train_on_what not in allowed:
            problems.append(f"train_on_what must be one of {allowed}, got {self.train_on_what!r}")
        flag: object = self.normalize_weights
        if not isinstance(flag, bool):
            problems.append(
                f"normalize_weights must be true or false, got {self.normalize_weights!r}"
            )
        try:
            parse_schedule(self.lr_schedule)
        except ConfigurationError as exc:
            problems.append(f"lr_schedule: {exc}")
        found = [problem for problem in problems if problem]
        if found:
            raise ConfigurationError("invalid sft config: " + "; ".join(found))


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
    config: SftConfig,
    *,
    training: TrainingClient,
    train_datums: Sequence[Datum],
    metrics: MetricsSink,
    run_dir: str | Path,
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
        run_dir: holds ``checkpoints.jsonl`` and ``metrics.jsonl``.
        evaluators: run before steps ``0, eval_every, ...`` (pre-update weights) and after
            the last step; sampling evaluators get a snapshot of the current weights.
        progress: live progress reporting.
        stop: when set (Ctrl-C), the loop finishes the submitted steps, saves a
            resumable checkpoint and returns with ``interrupted=True``.
        resume: continue from the last resumable record of ``run_dir``; without one, start
            afresh (dropping metric rows a killed earlier attempt logged).
        data_metrics: facts about the data (``data/skipped``), logged at step 0 when the
            run starts from step 0.

    Raises:
        ConfigurationError: no data, or ``batch_size`` larger than the data set.
    """
    progress = progress or NullProgress()
    stop = stop or threading.Event()
    log = CheckpointLog(run_dir)
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
            progress.note(f"run in {run_dir} already finished (checkpoint {record.name!r})")
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
        truncate_metrics(run_dir, start)
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


def _check_batch_size(config: SftConfig, n_train: int, skipped: int) -> None:
    if config.batch_size > n_train:
        note = f" ({skipped} conversations skipped: no trainable token)" if skipped else ""
        raise ConfigurationError(
            f"batch_size {config.batch_size} is larger than the training set "
            f"({n_train} examples{note}); set batch_size <= {n_train} or add data"
        )


def run_sft_job(ctx: JobContext, config: SftConfig) -> LoopResult:
    """``train sft``: build the data and evaluators of ``config`` and run :func:`run_sft`.

    Data: ``config.dataset == "arithmetic"`` uses the built-in task (train split; the
    held-out split, ``test_size`` problems, for ``test/nll`` and ``test/accuracy``);
    otherwise ``config.dataset`` (and ``config.test_dataset``, if given) are JSONL files
    read through ``ctx.datasets``. Conversations with no trainable token are skipped,
    reported through ``ctx.progress.note`` and counted in the ``data/skipped`` metric.

    Raises:
        ConfigurationError: the config is inconsistent with the data (batch larger than
            the training set, nothing trainable).
        InvalidDataError: a dataset is empty or a line is not a conversation (names the
            file and line); the DatasetStore raises ``DatasetNotFoundError`` for a missing
            file and ``DatasetFormatError`` for a line that is not JSON.
    """
    renderer = ctx.renderer
    kwargs: dict[str, Any] = {
        "train_on_what": config.train_on_what,
        "max_length": config.max_length,
        "normalize": config.normalize_weights,
    }
    task: ArithmeticTask | None = None
    if config.dataset == ARITHMETIC:
        task = ArithmeticTask(max_operand=config.max_operand, seed=config.seed)
        train_conversations = [{"messages": p.messages()} for p in task.problems("train")]
    else:
        train_conversations = load_conversations(ctx.datasets, config.dataset)
    train = conversations_to_datums(train_conversations, renderer, **kwargs)
    if train.skipped:
        ctx.progress.note(
            f"skipped {train.skipped} of {len(train_conversations)} training conversations "
            f"that render to no trainable token (train_on_what={config.train_on_what!r})"
        )
    if not train.datums:
        raise ConfigurationError(
            f"no training conversation of {config.dataset!r} has a trainable token "
            f"(all {train.skipped} skipped with train_on_what={config.train_on_what!r})"
        )
    _check_batch_size(config, len(train.datums), train.skipped)

    evaluators: list[Evaluator] = []
    test_conversations: list[dict[str, Any]] | None = None
    if config.test_dataset is not None:
        test_conversations = load_conversations(ctx.datasets, config.test_dataset)
    elif task is not None:
        test_conversations = [
            {"messages": p.messages()} for p in task.problems("test", config.test_size)
        ]
    if test_conversations is not None:
        test = conversations_to_datums(test_conversations, renderer, **kwargs)
        if test.skipped:
            ctx.progress.note(
                f"skipped {test.skipped} of {len(test_conversations)} test conversations "
                "that render to no trainable token"
            )
        if test.datums:
            evaluators.append(NLLEvaluator(datums=test.datums, name="nll"))
    if task is not None:
        evaluators.append(
            ArithmeticAccuracyEvaluator(
                problems=task.problems("test", config.test_size),
                renderer=renderer,
                max_tokens=config.eval_max_tokens,
            )
        )
    runner = (
        EvaluatorRunner(evaluators=evaluators, metrics=ctx.metrics, every=config.eval_every)
        if evaluators
        else None
    )
    return run_sft(
        config,
        training=ctx.training,
        train_datums=train.datums,
        metrics=ctx.metrics,
        run_dir=ctx.run_dir,
        evaluators=runner,
        progress=ctx.progress,
        stop=ctx.stop,
        resume=ctx.resume,
        data_metrics={"data/skipped": float(train.skipped)},
    )
