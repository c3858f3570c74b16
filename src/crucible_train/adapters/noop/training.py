"""Noop training client (adapter layer, no technology): refuses every computation.

Training has no meaningful no-op, so each call raises
:class:`~crucible_train.errors.BackendNotConfiguredError` naming ``training.backend``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import CustomLossFn, TrainingClient
from crucible_train.types import (
    AdamParams,
    Datum,
    ForwardBackwardOutput,
    LossFnName,
    OptimStepResponse,
)

__all__ = ["NoopTrainingClient"]

_PORT = "training"


class NoopTrainingClient(TrainingClient):
    """A training client for configurations that never train; every method raises.

    Raising at submission (rather than returning failed futures) makes the mistake visible
    at the line that asked for training.
    """

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: LossFnName,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "forward_backward")

    def forward(
        self, datums: Sequence[Datum], loss_fn: LossFnName
    ) -> Future[ForwardBackwardOutput]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "forward")

    def forward_backward_custom(
        self, datums: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "forward_backward_custom")

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "optim_step")

    def save_state(self, name: str) -> Future[str]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "save_state")

    def load_state(self, path: str) -> Future[None]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "load_state")

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "save_weights_for_sampler")

    def create_sampling_client(self, path: str) -> SamplingClient:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "create_sampling_client")
