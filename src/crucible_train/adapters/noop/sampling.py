"""Noop sampling client (adapter layer, no technology): refuses to sample or score.

Each call raises :class:`~crucible_train.errors.BackendNotConfiguredError` naming
``sampling.backend``.
"""

from __future__ import annotations

from concurrent.futures import Future

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.sampling import SamplingClient
from crucible_train.types import ModelInput, SampleResponse, SamplingParams

__all__ = ["NoopSamplingClient"]

_PORT = "sampling"


class NoopSamplingClient(SamplingClient):
    """A sampling client for configurations that never sample; every method raises.

    Holds no state, so it pickles trivially (as the port asks of sampling clients).
    """

    def sample(
        self, prompt: ModelInput, num_samples: int, params: SamplingParams
    ) -> Future[SampleResponse]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "sample")

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "compute_logprobs")
