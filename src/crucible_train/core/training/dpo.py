"""Direct preference optimisation (DPO) through ``forward_backward_custom``, pipelined.

A preference pair (prompt, chosen, rejected) arrives as two datums
(:mod:`crucible_train.core.training.preference_data`), weighted so that
``s = Σ_t w_t·logπ(target_t)`` is the completion's sequence log-probability. With
``Δ = s - s_ref`` (``s_ref`` under the reference policy) the loss of a batch of ``N`` pairs
is::

    loss = mean_i -log sigmoid(β·(Δc_i - Δr_i))

and its gradient, which the backend applies through a linear surrogate, is
``∂loss/∂logπ_t = -β·sigmoid(-β·m_i)·w_t / N`` on the chosen datum and the opposite on the rejected
one (``m_i = Δc_i - Δr_i``).

The reference is the policy *before the first step*. Its sequence log-probabilities of
every training and held-out datum are computed once with ``forward`` (no gradients) and
saved in the run store under :data:`REFERENCE_ARRAYS` (``RUN_DIR/dpo_reference.npz``) with
a fingerprint of the data; a resumed run reloads them instead of scoring the resumed
(already trained) weights, so the objective is the same as an uninterrupted run's.

Checkpoints, resume and Ctrl-C follow :mod:`crucible_train.core.training.sft`: a record
names the NEXT step and is written once its state is saved and every earlier step's
metrics are logged; a resumed run ends with the weights and metric rows of an
uninterrupted one (time-based metrics aside).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future

import attrs
import numpy as np
import numpy.typing as npt

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
from crucible_train.core.training.validators import non_negative_problem, positive_problem
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.metrics import MetricsSink
from crucible_train.ports.run_store import RunStore
from crucible_train.ports.training import CustomLossFn, CustomLossResult, TrainingClient
from crucible_train.types import Datum, ForwardBackwardOutput, OptimStepResponse

__all__ = [
    "REFERENCE_ARRAYS",
    "DpoLoopConfig",
    "ReferenceLogprobs",
    "data_fingerprint",
    "dpo_loss",
    "make_dpo_loss_fn",
    "run_dpo",
    "score_sequences",
]

REFERENCE_ARRAYS = "dpo_reference"
"""Run-store name of the reference log-probabilities (``dpo_reference.npz`` in a run dir)."""


# --- configuration ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DpoLoopConfig(ScheduledAdamW):
    """Settings of the DPO loop (:func:`run_dpo`); a recipe's config adds its pairs' fields.

    Args:
        learning_rate: peak AdamW learning rate.
        lr_schedule: ``constant``, ``linear`` or ``cosine`` after the warmup.
        warmup_steps: linear warmup from 0 over this many steps.
        beta: DPO temperature β (scales the implicit reward ``β·(s - s_ref)``).
        batch_size: preference pairs per step (two datums each).
        num_epochs: passes over the pairs (``max_steps`` may end the run earlier).
        max_steps: stop after this many steps; ``None`` runs every epoch.
        seed: seeds the per-epoch shuffles.
        eval_every: held-out preference evaluation every N steps (and at the end); 0 only
            at the start and the end.
        save_every: save a resumable checkpoint every N steps; 0 only at the end.
        submit_ahead: steps submitted before the oldest result is awaited (1 pipelines).
        reference_batch_size: datums per ``forward`` call when scoring the reference and
            the held-out set.
        beta1: AdamW beta1.
        beta2: AdamW beta2.
        eps: AdamW epsilon.
        weight_decay: AdamW decoupled weight decay.
        grad_clip_norm: clip the global gradient norm to this (0: no clipping).

    Raises:
        ConfigurationError: fields are out of range (the message names every one).
    """

    learning_rate: float = 1e-4
    lr_schedule: str = "linear"
    warmup_steps: int = 5
    beta: float = 0.5
    batch_size: int = 32
    num_epochs: int = 8
    max_steps: int | None = 250
    seed: int = 0
    eval_every: int = 10
    save_every: int = 20
    submit_ahead: int = 1
    reference_batch_size: int = 128
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip_norm: float = 1.0

    def __attrs_post_init__(self) -> None:
        found = [problem for problem in self.problems() if problem]
        if found:
            raise ConfigurationError("invalid DPO config: " + "; ".join(found))

    def problems(self) -> list[str | None]:
        """One entry per check, a message where a field is invalid; a subclass that adds
        fields extends the list."""
        problems = [
            positive_problem("learning_rate", self.learning_rate),
            positive_problem("beta", self.beta),
            positive_problem("batch_size", self.batch_size),
            positive_problem("num_epochs", self.num_epochs),
            positive_problem("max_steps", self.max_steps, allow_none=True),
            positive_problem("submit_ahead", self.submit_ahead),
            positive_problem("reference_batch_size", self.reference_batch_size),
            positive_problem("eps", self.eps),
            non_negative_problem("warmup_steps", self.warmup_steps),
            non_negative_problem("eval_every", self.eval_every),
            non_negative_problem("save_every", self.save_every),
        ]
        for name, value in (
            ("weight_decay", self.weight_decay),
            ("grad_clip_norm", self.grad_clip_norm),
        ):
            if not value >= 0:
                problems.append(f"{name} must be >= 0, got {value!r}")
        for name, value in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0.0 <= value < 1.0:
                problems.append(f"{name} must be in [0, 1), got {value!r}")
        try:
            parse_schedule(self.lr_schedule)
        except ConfigurationError as exc:
            problems.append(f"lr_schedule: {exc}")
        return problems


# --- loss -------------------------------------------------------------------------------


def _log_sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``log sigmoid(x)`` without overflow for any finite ``x``."""
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sequence_sums(
    datums: Sequence[Datum], logprobs: Sequence[npt.NDArray[np.float32]]
) -> npt.NDArray[np.float64]:
    return np.array(
        [
            float(
                np.dot(
                    d.loss_fn_inputs["weights"].to_numpy().astype(np.float64),
                    np.asarray(lp, dtype=np.float64),
                )
            )
            for d, lp in zip(datums, logprobs, strict=True)
        ],
        dtype=np.float64,
    )


def _pair_metrics(
    delta_chosen: npt.NDArray[np.float64], delta_rejected: npt.NDArray[np.float64], beta: float
) -> tuple[npt.NDArray[np.float64], dict[str, float]]:
    z = beta * (delta_chosen - delta_rejected)
    loss = float(np.mean(-_log_sigmoid(z)))
    metrics = {
        "loss": loss,
        "accuracy": float(np.mean(delta_chosen > delta_rejected)),
        "margin": float(np.mean(z)),
        "chosen_reward": float(np.mean(beta * delta_chosen)),
        "rejected_reward": float(np.mean(beta * delta_rejected)),
    }
    return z, metrics


def dpo_loss(
    datums: Sequence[Datum],
    logprobs: Sequence[npt.NDArray[np.float32]],
    reference: npt.ArrayLike,
    beta: float,
) -> CustomLossResult:
    """DPO loss, its gradient w.r.t. each logprob array, and ``dpo/*`` metrics.

    Args:
        datums: ``[chosen_0, rejected_0, chosen_1, rejected_1, ...]`` with ``weights``.
        logprobs: the policy's per-position target log-probabilities, one array per datum.
        reference: the reference sequence log-probabilities, shape ``(pairs, 2)``
            (chosen, rejected).
        beta: DPO temperature.
    """
    if len(datums) % 2 or len(datums) != len(logprobs):
        raise ConfigurationError(
            f"dpo_loss needs chosen/rejected datum pairs and one logprob array per datum, "
            f"got {len(datums)} datums and {len(logprobs)} arrays"
        )
    ref = np.asarray(reference, dtype=np.float64).reshape(-1, 2)
    n = len(datums) // 2
    if ref.shape[0] != n:
        raise ConfigurationError(f"dpo_loss: {ref.shape[0]} reference pairs for {n} pairs")
    sums = _sequence_sums(datums, logprobs).reshape(n, 2)
    delta_chosen = sums[:, 0] - ref[:, 0]
    delta_rejected = sums[:, 1] - ref[:, 1]
    z, metrics = _pair_metrics(delta_chosen, delta_rejected, beta)
    # d/dz mean(-log sigmoid(z)) = -sigmoid(-z)/n;
    # dz/d logπ_chosen = β·w and dz/d logπ_rejected = -β·w.
    coefficient = -beta * _sigmoid(-z) / n
    grads: list[npt.NDArray[np.float32]] = []
    for index, datum in enumerate(datums):
        pair, is_rejected = divmod(index, 2)
        weights = datum.loss_fn_inputs["weights"].to_numpy().astype(np.float64)
        sign = -1.0 if is_rejected else 1.0
        grads.append((sign * coefficient[pair] * weights).astype(np.float32))
    named = {f"dpo/{key}": value for key, value in metrics.items()}
    named["num_pairs"] = float(n)
    return metrics["loss"], grads, named


def make_dpo_loss_fn(reference: npt.ArrayLike, beta: float) -> CustomLossFn:
    """The :data:`~crucible_train.ports.training.CustomLossFn` of one batch."""
    ref = np.asarray(reference, dtype=np.float64)

    def loss_fn(
        datums: Sequence[Datum], logprobs: Sequence[npt.NDArray[np.float32]]
    ) -> CustomLossResult:
        return dpo_loss(datums, logprobs, ref, beta)

    return loss_fn


# --- reference log-probabilities ----------------------------------------------------------


def data_fingerprint(*datum_sets: Sequence[Datum]) -> str:
    """SHA-256 of every datum's tokens, targets and weights (in order, per set)."""
    digest = hashlib.sha256()
    for datums in datum_sets:
        digest.update(f"set:{len(datums)};".encode())
        for datum in datums:
            digest.update(np.asarray(datum.model_input.to_ints(), dtype=np.int64).tobytes())
            digest.update(b"|")
            digest.update(
                datum.loss_fn_inputs["target_tokens"].to_numpy().astype(np.int64).tobytes()
            )
            digest.update(b"|")
            digest.update(datum.loss_fn_inputs["weights"].to_numpy().astype(np.float32).tobytes())
            digest.update(b";")
    return digest.hexdigest()


def score_sequences(
    training: TrainingClient, datums: Sequence[Datum], batch_size: int
) -> npt.NDArray[np.float64]:
    """Weighted sequence log-probability of each datum under the current weights (forward only)."""
    futures: list[Future[ForwardBackwardOutput]] = [
        training.forward(datums[i : i + batch_size], "cross_entropy")
        for i in range(0, len(datums), batch_size)
    ]
    logprobs: list[npt.NDArray[np.float32]] = []
    for future in futures:
        logprobs.extend(o["logprobs"].to_numpy() for o in future.result().loss_fn_outputs)
    return _sequence_sums(datums, logprobs)


@attrs.frozen(kw_only=True)
class ReferenceLogprobs:
    """Reference sequence log-probabilities, shape ``(pairs, 2)``, of the train and test sets.

    Attributes:
        train: ``[[chosen, rejected], ...]`` of the training pairs.
        test: the same for the held-out pairs.
        fingerprint: :func:`data_fingerprint` of the two datum sets.
    """

    train: npt.NDArray[np.float64]
    test: npt.NDArray[np.float64]
    fingerprint: str

    @classmethod
    def compute(
        cls,
        training: TrainingClient,
        train_datums: Sequence[Datum],
        test_datums: Sequence[Datum],
        *,
        batch_size: int,
    ) -> ReferenceLogprobs:
        """Score both sets with the current weights (call before the first step)."""
        return cls(
            train=score_sequences(training, train_datums, batch_size).reshape(-1, 2),
            test=score_sequences(training, test_datums, batch_size).reshape(-1, 2),
            fingerprint=data_fingerprint(train_datums, test_datums),
        )

    def save(self, store: RunStore) -> None:
        """Save into ``store`` under :data:`REFERENCE_ARRAYS` (atomically)."""
        store.save_arrays(
            REFERENCE_ARRAYS,
            {"train": self.train, "test": self.test, "fingerprint": np.array(self.fingerprint)},
        )

    @classmethod
    def load(cls, store: RunStore) -> ReferenceLogprobs | None:
        """Read what :meth:`save` stored; ``None`` when nothing is stored.

        Raises:
            InvalidDataError: what is stored is not a reference.
        """
        arrays = store.load_arrays(REFERENCE_ARRAYS)
        if arrays is None:
            return None
        try:
            return cls(
                train=np.asarray(arrays["train"], dtype=np.float64).reshape(-1, 2),
                test=np.asarray(arrays["test"], dtype=np.float64).reshape(-1, 2),
                fingerprint=str(arrays["fingerprint"]),
            )
        except (ValueError, KeyError) as exc:
            where = store.arrays_location(REFERENCE_ARRAYS)
            raise InvalidDataError(f"{where}: not a DPO reference file ({exc})") from None


def _reference(
    training: TrainingClient,
    train_datums: Sequence[Datum],
    test_datums: Sequence[Datum],
    *,
    store: RunStore,
    trained: bool,
    batch_size: int,
    progress: Progress,
) -> ReferenceLogprobs:
    """Load the reference of ``store`` when it fits the data, else compute and save it.

    ``trained``: the client's weights are no longer the initial policy (resumed from a
    checkpoint), so the reference must be loaded, never recomputed.
    """
    where = store.arrays_location(REFERENCE_ARRAYS)
    fingerprint = data_fingerprint(train_datums, test_datums)
    stored = ReferenceLogprobs.load(store)
    if stored is not None:
        if stored.fingerprint == fingerprint:
            if trained:
                progress.note(f"reloaded reference log-probs from {where}")
            return stored
        if trained:
            raise ConfigurationError(
                f"{where} was computed for different preference data; resume with the same "
                "dataset settings or start a new run directory"
            )
    elif trained:
        raise ConfigurationError(
            f"cannot resume: {where} (reference log-probs of the initial policy) is missing; "
            "start a new run directory"
        )
    reference = ReferenceLogprobs.compute(
        training, train_datums, test_datums, batch_size=batch_size
    )
    reference.save(store)
    return reference


# --- loop -------------------------------------------------------------------------------


@attrs.define
class _Pending:
    step: int
    epoch: int
    learning_rate: float
    num_tokens: int
    forward_backward: Future[ForwardBackwardOutput]
    optim: Future[OptimStepResponse]
    save: Future[str] | None
    sampler_save: Future[str] | None
    save_name: str | None


def _evaluate(
    training: TrainingClient,
    test_datums: Sequence[Datum],
    reference: npt.NDArray[np.float64],
    config: DpoLoopConfig,
) -> dict[str, float]:
    """Held-out preference metrics of the current weights (forward only)."""
    sums = score_sequences(training, test_datums, config.reference_batch_size).reshape(-1, 2)
    _, metrics = _pair_metrics(
        sums[:, 0] - reference[:, 0], sums[:, 1] - reference[:, 1], config.beta
    )
    return {
        "test/dpo_accuracy": metrics["accuracy"],
        "test/dpo_loss": metrics["loss"],
        "test/dpo_margin": metrics["margin"],
        # The policy itself prefers the chosen completion (log π(c) > log π(r)).
        "test/accuracy": float(np.mean(sums[:, 0] > sums[:, 1])),
    }


def run_dpo(
    config: DpoLoopConfig,
    *,
    training: TrainingClient,
    train_pairs: Sequence[Datum],
    test_pairs: Sequence[Datum],
    metrics: MetricsSink,
    run_store: RunStore,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    resume: bool = False,
) -> LoopResult:
    """Train ``training`` with DPO against its own initial weights; see the module docstring.

    Args:
        config: loop settings.
        training: the policy; its weights when the run starts (fresh) are the reference.
        train_pairs: datums ``[chosen_0, rejected_0, ...]`` (see :func:`pairs_to_datums`).
        test_pairs: held-out datums in the same layout (may be empty).
        metrics: where step and evaluation metrics go.
        run_store: the run's checkpoint records, metric rewind and reference arrays.
        progress: live progress reporting.
        stop: when set (Ctrl-C), the loop finishes the submitted steps, saves a
            resumable checkpoint and returns with ``interrupted=True``.
        resume: continue from the last resumable record of ``run_store`` (the reference
            log-probs are reloaded, not recomputed).

    Raises:
        ConfigurationError: no pairs, an odd number of datums, ``batch_size`` larger than
            the number of pairs, or a resume whose reference file is missing or differs.
    """
    progress = progress or NullProgress()
    stop = stop or threading.Event()
    log = CheckpointLog(run_store)
    if not train_pairs:
        raise ConfigurationError("the preference set is empty after rendering; nothing to train")
    if len(train_pairs) % 2 or len(test_pairs) % 2:
        raise ConfigurationError("preference datums must come in (chosen, rejected) pairs")
    n_pairs = len(train_pairs) // 2
    n_batches = len(batch_indices(n_pairs, config.batch_size, seed=config.seed, epoch=0))
    total = n_batches * config.num_epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    start, resumed_from = 0, None
    record = log.last_resumable() if resume else None
    if record is not None and record.final:
        progress.note(f"run in {run_store.location} already finished (checkpoint {record.name!r})")
        return LoopResult(
            steps_done=record.step,
            total_steps=total,
            interrupted=False,
            resumed_from=record.step,
            final_record=record,
            last_metrics={},
        )
    # The reference must be settled before any state is loaded: on a fresh run the
    # client's weights ARE the reference policy.
    reference = _reference(
        training,
        train_pairs,
        test_pairs,
        store=run_store,
        trained=record is not None,
        batch_size=config.reference_batch_size,
        progress=progress,
    )
    if record is not None:
        training.load_state(record.state_path or "").result()
        start = resumed_from = record.step
        run_store.rewind_metrics(start)
        progress.note(f"resumed from checkpoint {record.name!r} at step {start}")
    schedule = config.schedule()
    progress.start(total, start, "dpo")
    pending: deque[_Pending] = deque()
    last: dict[str, float] = {}
    clock = [time.perf_counter()]

    def evaluate(step: int) -> None:
        if not test_pairs:
            return
        while pending:
            finish(pending.popleft())
        results = _evaluate(training, test_pairs, reference.test, config)
        metrics.log_metrics(results, step=step)
        last.update(results)
        clock[0] = time.perf_counter()

    def finish(p: _Pending) -> None:
        out = p.forward_backward.result()
        optim = p.optim.result()
        now = time.perf_counter()
        elapsed = now - clock[0]
        clock[0] = now
        step_metrics = {k: float(v) for k, v in out.metrics.items() if k != "loss"}
        step_metrics.update(
            {
                "lr": p.learning_rate,
                "epoch": float(p.epoch),
                "progress": (p.step + 1) / total,
                "num_tokens": float(p.num_tokens),
            }
        )
        if elapsed > 0:
            step_metrics["time/step_s"] = elapsed
        for key, value in optim.metrics.items():
            step_metrics[f"optim/{key}"] = float(value)
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
    order: list[list[int]] = []
    order_epoch = -1
    while step < total and not stop.is_set():
        epoch, batch = divmod(step, n_batches)
        if epoch != order_epoch:
            order = batch_indices(n_pairs, config.batch_size, seed=config.seed, epoch=epoch)
            order_epoch = epoch
        if step % max(config.eval_every, 1) == 0 and (config.eval_every or step == 0):
            evaluate(step)
        pairs = order[batch]
        datums = [train_pairs[2 * i + k] for i in pairs for k in (0, 1)]
        lr = lr_at(config.learning_rate, schedule, step, total)
        fb = training.forward_backward_custom(
            datums, make_dpo_loss_fn(reference.train[pairs], config.beta)
        )
        optim = training.optim_step(config.adam(lr))
        save_name = save = sampler_save = None
        if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < total:
            save_name = f"{step + 1:06d}"
            save = training.save_state(save_name)
            sampler_save = training.save_weights_for_sampler(save_name)
        pending.append(
            _Pending(
                step=step,
                epoch=epoch,
                learning_rate=lr,
                num_tokens=sum(d.model_input.length for d in datums),
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
    if step >= total:
        evaluate(total)
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
