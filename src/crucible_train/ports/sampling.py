"""Port: a sampling backend that generates continuations and scores sequences.

A new adapter must guarantee: futures resolve or fail with
:class:`~crucible_train.errors.SamplingClientError` (never hang); sampled ``logprobs`` are
the log-probabilities of the sampled tokens under the sampled weights at temperature 1 of
the *processed* distribution the backend documents; the client is picklable when it
holds only a path and settings (so rollouts can run in worker processes).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol, runtime_checkable

from crucible_train.types import ModelInput, SampleResponse, SamplingParams

__all__ = ["SamplingClient"]


@runtime_checkable
class SamplingClient(Protocol):
    """Samples from one fixed set of weights. Thread-safe; calls return futures at once."""

    def sample(
        self, prompt: ModelInput, num_samples: int, params: SamplingParams
    ) -> Future[SampleResponse]:
        """Generate ``num_samples`` continuations of ``prompt``.

        Returns:
            A future of one :class:`~crucible_train.types.TokensWithLogprobs` per sample,
            each with its tokens (stop sequence included), per-token logprobs and stop
            reason. Safe to retry (with a ``seed``, retries give the same tokens).
        """
        ...

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        """Log-probability of every token of ``prompt`` given its prefix.

        Returns:
            A future of ``prompt.length`` values; entry 0 is ``None`` (nothing predicts the
            first token). Idempotent.
        """
        ...
