"""Port: a training backend that runs forward/backward passes and optimiser steps.

Mirrors the Tinker API so the same loop runs on the local torch engine and on Tinker.
Every call returns a :class:`concurrent.futures.Future` immediately; the backend executes
calls strictly in submission order, so a caller may submit ``forward_backward`` and
``optim_step`` back to back and prepare the next batch while they run.

A new adapter must guarantee: submission-order execution, futures that fail with a
:class:`~crucible_train.errors.TrainingClientError` (never hang) when the backend fails,
and ``loss_fn_outputs`` in the order of the datums given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

import numpy as np
import numpy.typing as npt

from crucible_train.types import (
    AdamParams,
    Datum,
    ForwardBackwardOutput,
    LossFnName,
    OptimStepResponse,
)

if TYPE_CHECKING:
    from crucible_train.ports.sampling import SamplingClient

__all__ = ["CustomLossFn", "CustomLossResult", "TrainingClient"]

CustomLossResult: TypeAlias = tuple[float, Sequence[npt.NDArray[np.float32]], Mapping[str, float]]
"""``(loss, d(loss)/d(logprob) per datum, metrics)`` returned by a custom loss."""

CustomLossFn: TypeAlias = Callable[
    [Sequence[Datum], Sequence[npt.NDArray[np.float32]]], CustomLossResult
]
"""A loss written in numpy: it receives the datums and one float32 logprob array per datum
(length ``model_input.length``) and returns the loss value, the gradient of the loss with
respect to each logprob array (same shapes), and metrics. The backend applies the gradient
through the linear surrogate ``sum(g * logprobs)``, so no torch is needed in the caller."""


@runtime_checkable
class TrainingClient(Protocol):
    """Runs training computations on one model (full weights or a LoRA adapter).

    Thread-safety: calls may be submitted from any thread; they execute in submission
    order. Not picklable (it owns a model or a connection).
    """

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: LossFnName,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        """Compute a built-in loss on ``datums`` and accumulate its gradients.

        Args:
            datums: examples whose ``loss_fn_inputs`` hold what ``loss_fn`` needs
                (``target_tokens`` and ``weights`` for ``cross_entropy``; ``target_tokens``,
                ``logprobs`` and ``advantages`` for the policy losses).
            loss_fn: one of ``cross_entropy``, ``importance_sampling``, ``ppo``, ``cispo``,
                ``dro``.
            loss_fn_config: loss options such as PPO clip thresholds.

        Returns:
            A future of per-datum ``logprobs`` and ``elementwise_loss`` plus summed metrics.
            Fails with ``ConfigurationError`` for an unknown loss or missing input,
            ``TrainingClientError`` when the backend fails. Not idempotent (gradients add up).
        """
        ...

    def forward(
        self, datums: Sequence[Datum], loss_fn: LossFnName
    ) -> Future[ForwardBackwardOutput]:
        """Like :meth:`forward_backward` but touches no gradients (evaluation). Idempotent."""
        ...

    def forward_backward_custom(
        self, datums: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        """Compute logprobs, call the numpy ``loss_fn`` on them and backpropagate its gradient.

        See :data:`CustomLossFn`. The returned metrics are those ``loss_fn`` returned plus
        ``loss`` (its loss value).
        """
        ...

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        """Apply one AdamW step with the accumulated gradients, then clear them."""
        ...

    def save_state(self, name: str) -> Future[str]:
        """Save weights, optimiser state, step counter and RNG state; the future gives the path.

        The state is complete when the future resolves (written atomically), so a caller
        may record the path as a resumable checkpoint at that moment.
        """
        ...

    def load_state(self, path: str) -> Future[None]:
        """Restore everything :meth:`save_state` wrote; fails naming what is missing or differs."""
        ...

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        """Save the current weights in a form a sampler can load; the future gives the path."""
        ...

    def create_sampling_client(self, path: str) -> SamplingClient:
        """A sampling client over weights saved by :meth:`save_weights_for_sampler`."""
        ...
