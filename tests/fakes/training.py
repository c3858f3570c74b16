"""FakeTrainingClient: a unigram model trained by plain SGD, in memory, recording every call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.adapters.local_torch.losses import (
    LOSS_INPUTS,
    check_loss_name,
    resolve_loss_config,
)
from crucible_train.errors import ConfigurationError, TrainingClientError
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import CustomLossFn, TrainingClient
from crucible_train.types import (
    AdamParams,
    Datum,
    ForwardBackwardOutput,
    LossFnName,
    OptimStepResponse,
    TensorData,
)

from fakes._futures import done, failed
from fakes.sampling import DEFAULT_VOCAB, FakeSamplingClient, SampleCall, log_softmax

Tokens = tuple[int, ...]


class FakeBatch(NamedTuple):
    """One gradient call: the loss (``"custom"`` for ``forward_backward_custom``), its
    options and the datums."""

    loss_fn: str
    loss_fn_config: Mapping[str, float] | None
    datums: list[Datum]


@attrs.frozen(kw_only=True)
class FakeTrainingState:
    """What ``save_state`` (and ``save_weights_for_sampler``) keep: the weights and the
    history of optimiser steps, so a resumed client reports the whole run."""

    theta: npt.NDArray[np.float64] = attrs.field(eq=attrs.cmp_using(eq=np.array_equal))
    trained: tuple[tuple[Tokens, ...], ...]
    lrs: tuple[float, ...]


class FakeTrainingClient(TrainingClient):
    """A training backend over a unigram model: the logprob of target ``t`` at any position
    is ``log_softmax(theta)[t]``; ``optim_step`` is plain SGD (``theta -= lr * grad``).

    Every call runs when it is submitted (so in submission order) and returns a finished
    future. Built-in losses use the local engine's formulas and input checks; custom
    losses are backpropagated through their gradient, as the port describes.

    Args:
        theta: initial logits, one per token id (zeros over :data:`DEFAULT_VOCAB` ids).
        logprobs: scripted logprobs: ``logprobs(datum)`` is reported for each datum instead
            of the model's (the gradients still come from the model).
        states: where saved states and sampler weights go, by path (``state/<name>``,
            ``sampler://<name>/<steps>``); share one dict so a new client can resume.
        sampler: ``create_sampling_client`` returns this for every path (recorded in
            :attr:`sampler_paths`); without it, a :class:`FakeSamplingClient` over the
            weights saved at that path.
        sample_calls: the list in which the samplers it creates record their calls.
        events: an event log (shared with other fakes when given): ``fb:<n>``,
            ``custom:<n>``, ``forward:<n>``, ``optim:<step>``, ``save_state:<name>``,
            ``load_state:<path>``, ``sampler:<name>``, and ``await <label>`` when a caller
            waits for that call's result.
        fail_from: gradient call (``forward_backward`` or ``forward_backward_custom``)
            number ``fail_from`` (0-based) and every later call fail with
            ``TrainingClientError(failure)``: the backend went away.
        failure: the message of that error.

    Records: :attr:`batches` (every gradient call), :attr:`forward_calls`
    (``(len(datums), loss_fn)`` per ``forward``), :attr:`trained` (per optimiser step, the
    model inputs it learned from), :attr:`lrs`, :attr:`grad_norms`, :attr:`events`.
    """

    def __init__(
        self,
        *,
        theta: npt.ArrayLike | None = None,
        logprobs: Callable[[Datum], npt.ArrayLike] | None = None,
        states: dict[str, FakeTrainingState] | None = None,
        sampler: SamplingClient | None = None,
        sample_calls: list[SampleCall] | None = None,
        events: list[str] | None = None,
        fail_from: int | None = None,
        failure: str = "the fake training backend went away",
    ) -> None:
        self.theta = np.zeros(DEFAULT_VOCAB) if theta is None else np.array(theta, np.float64)
        self.scripted_logprobs = logprobs
        self.states: dict[str, FakeTrainingState] = {} if states is None else states
        self.sampler = sampler
        self.sample_calls: list[SampleCall] = [] if sample_calls is None else sample_calls
        self.events: list[str] = [] if events is None else events
        self.fail_from = fail_from
        self.failure = failure
        self.batches: list[FakeBatch] = []
        self.forward_calls: list[tuple[int, str]] = []
        self.trained: list[list[Tokens]] = []
        self.lrs: list[float] = []
        self.grad_norms: list[float] = []
        self.sampler_paths: list[str] = []
        self._grad = np.zeros_like(self.theta)
        self._pending: list[Tokens] = []
        self._gradient_calls = 0
        self._forwards = 0
        self._down = False
        self._lock = threading.Lock()

    @property
    def steps(self) -> int:
        """Optimiser steps taken, those restored by ``load_state`` included."""
        return len(self.trained)

    # --- the port ---------------------------------------------------------------------

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: LossFnName,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        """Logprobs and elementwise loss of a built-in loss; its gradient accumulates."""
        with self._lock:
            label = f"fb:{self._gradient_calls}"
            self.batches.append(FakeBatch(str(loss_fn), loss_fn_config, list(datums)))
            return self._run(label, lambda: self._builtin(datums, loss_fn, loss_fn_config))

    def forward(
        self, datums: Sequence[Datum], loss_fn: LossFnName
    ) -> Future[ForwardBackwardOutput]:
        """Like :meth:`forward_backward`, touching no gradient."""
        with self._lock:
            label = f"forward:{self._forwards}"
            self._forwards += 1
            self.forward_calls.append((len(datums), str(loss_fn)))
            return self._run(label, lambda: self._builtin(datums, loss_fn, None, backward=False))

    def forward_backward_custom(
        self, datums: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        """Calls ``loss_fn`` on the logprobs and accumulates its gradient through the model."""
        with self._lock:
            label = f"custom:{self._gradient_calls}"
            self.batches.append(FakeBatch("custom", None, list(datums)))
            return self._run(label, lambda: self._custom(datums, loss_fn))

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        """One SGD step with the accumulated gradient, then clears it."""
        with self._lock:
            return self._run(f"optim:{self.steps}", lambda: self._step(params))

    def save_state(self, name: str) -> Future[str]:
        """Keeps the weights and history under ``state/<name>``."""
        with self._lock:
            return self._run(f"save_state:{name}", lambda: self._save(f"state/{name}"))

    def load_state(self, path: str) -> Future[None]:
        """Restores what ``save_state`` kept under ``path``."""
        with self._lock:
            return self._run(f"load_state:{path}", lambda: self._load(path))

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        """Keeps the weights under ``sampler://<name>/<steps>``."""
        with self._lock:
            path = f"sampler://{name}/{self.steps}"
            return self._run(f"sampler:{name}", lambda: self._save(path))

    def create_sampling_client(self, path: str) -> SamplingClient:
        """The ``sampler`` given, or a :class:`FakeSamplingClient` over the weights at ``path``.

        Raises:
            TrainingClientError: nothing was saved at ``path``, or the backend is down.
        """
        with self._lock:
            self.sampler_paths.append(path)
            if self._down:
                raise TrainingClientError(self.failure)
            if self.sampler is not None:
                return self.sampler
            if path not in self.states:
                raise TrainingClientError(f"no sampler weights were saved at {path!r}")
            return FakeSamplingClient(theta=self.states[path].theta, calls=self.sample_calls)

    # --- behind the port --------------------------------------------------------------

    def _run(self, label: str, work: Callable[[], Any]) -> Future[Any]:
        self.events.append(label)
        gradient = label.startswith(("fb:", "custom:"))
        if gradient:
            if self.fail_from is not None and self._gradient_calls >= self.fail_from:
                self._down = True
            self._gradient_calls += 1
        if self._down:
            return failed(TrainingClientError(self.failure), self.events, label)
        try:
            return done(work(), self.events, label)
        except Exception as exc:  # failures travel in the future, as the port says
            return failed(exc, self.events, label)

    def _model_logprobs(self, datum: Datum) -> npt.NDArray[np.float64]:
        targets = self._targets(datum)
        return log_softmax(self.theta)[targets]

    def _reported(self, datum: Datum) -> npt.NDArray[np.float32]:
        if self.scripted_logprobs is not None:
            return np.asarray(self.scripted_logprobs(datum), dtype=np.float32)
        return self._model_logprobs(datum).astype(np.float32)

    def _targets(self, datum: Datum) -> npt.NDArray[np.int64]:
        if "target_tokens" not in datum.loss_fn_inputs:
            raise ConfigurationError("a datum has no target_tokens; every loss needs them")
        targets = datum.loss_fn_inputs["target_tokens"].to_numpy().astype(np.int64)
        if targets.shape != (datum.model_input.length,):
            raise ConfigurationError(
                f"target_tokens has shape {targets.shape}; the fake wants one target per "
                f"position ({datum.model_input.length})"
            )
        if targets.size and not (targets.min() >= 0 and targets.max() < self.theta.shape[0]):
            raise TrainingClientError(
                f"target ids outside the fake model's vocabulary 0..{self.theta.shape[0] - 1}"
            )
        return targets

    def _accumulate(self, datum: Datum, dloss_dlogprob: npt.NDArray[np.float64]) -> None:
        # d log_softmax(theta)[t] / d theta = onehot(t) - softmax(theta)
        targets = self._targets(datum)
        probs = np.exp(log_softmax(self.theta))
        np.add.at(self._grad, targets, dloss_dlogprob)
        self._grad -= dloss_dlogprob.sum() * probs
        self._pending.append(tuple(datum.model_input.to_ints()))

    def _builtin(
        self,
        datums: Sequence[Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, float] | None,
        *,
        backward: bool = True,
    ) -> ForwardBackwardOutput:
        name = check_loss_name(loss_fn)
        config = resolve_loss_config(name, loss_fn_config)
        outputs: list[Mapping[str, TensorData]] = []
        total = 0.0
        for datum in datums:
            missing = [key for key in LOSS_INPUTS[name] if key not in datum.loss_fn_inputs]
            if missing:
                raise ConfigurationError(
                    f"{name} needs loss_fn_inputs {', '.join(LOSS_INPUTS[name])}; "
                    f"missing {', '.join(missing)}"
                )
            logp = self._model_logprobs(datum)
            inputs = {k: v.to_numpy().astype(np.float64) for k, v in datum.loss_fn_inputs.items()}
            loss, grad = _loss_and_grad(name, logp, inputs, config)
            total += float(loss.sum())
            if backward:
                self._accumulate(datum, grad)
            outputs.append(
                {
                    "logprobs": TensorData.from_numpy(self._reported(datum)),
                    "elementwise_loss": TensorData.from_numpy(loss.astype(np.float32)),
                }
            )
        return ForwardBackwardOutput(loss_fn_outputs=outputs, metrics={"loss:sum": total})

    def _custom(self, datums: Sequence[Datum], loss_fn: CustomLossFn) -> ForwardBackwardOutput:
        logprobs = [self._reported(datum) for datum in datums]
        loss, grads, metrics = loss_fn(datums, logprobs)
        for datum, grad in zip(datums, grads, strict=True):
            self._accumulate(datum, np.asarray(grad, dtype=np.float64))
        outputs: list[Mapping[str, TensorData]] = [
            {"logprobs": TensorData.from_numpy(lp)} for lp in logprobs
        ]
        return ForwardBackwardOutput(
            loss_fn_outputs=outputs, metrics={**metrics, "loss": float(loss)}
        )

    def _step(self, params: AdamParams) -> OptimStepResponse:
        norm = float(np.linalg.norm(self._grad))
        self.theta = self.theta - params.learning_rate * self._grad
        self._grad = np.zeros_like(self.theta)
        self.trained.append(self._pending)
        self._pending = []
        self.lrs.append(params.learning_rate)
        self.grad_norms.append(norm)
        return OptimStepResponse(metrics={"grad_norm": norm})

    def _save(self, path: str) -> str:
        self.states[path] = FakeTrainingState(
            theta=self.theta.copy(),
            trained=tuple(tuple(batch) for batch in self.trained),
            lrs=tuple(self.lrs),
        )
        return path

    def _load(self, path: str) -> None:
        state = self.states.get(path)
        if state is None:
            raise TrainingClientError(f"no training state was saved at {path!r}")
        self.theta = state.theta.copy()
        self.trained = [list(batch) for batch in state.trained]
        self.lrs = list(state.lrs)
        self._grad = np.zeros_like(self.theta)
        self._pending = []


def _loss_and_grad(
    name: str,
    logp: npt.NDArray[np.float64],
    inputs: Mapping[str, npt.NDArray[np.float64]],
    config: Mapping[str, float],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Elementwise loss of a built-in loss (formulas of the local engine) and its
    derivative with respect to ``logp``."""
    if name == "cross_entropy":
        weights = inputs["weights"]
        return -weights * logp, -weights
    advantages = inputs["advantages"]
    ratio = np.exp(logp - inputs["logprobs"])
    if name == "importance_sampling":
        return -ratio * advantages, -ratio * advantages
    if name in ("ppo", "cispo"):
        clipped = np.clip(ratio, config["clip_low_threshold"], config["clip_high_threshold"])
        if name == "cispo":
            return -clipped * logp * advantages, -clipped * advantages
        unclipped = ratio * advantages <= clipped * advantages
        loss = -np.minimum(ratio * advantages, clipped * advantages)
        return loss, np.where(unclipped, -ratio * advantages, 0.0)
    beta = config["beta"]  # dro
    penalty = logp - inputs["logprobs"]
    return -(logp * advantages - 0.5 * beta * penalty**2), -(advantages - beta * penalty)
