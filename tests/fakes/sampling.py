"""FakeSamplingClient: scripted replies, or samples of a unigram model; records every call."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt

from crucible_train.errors import SamplingClientError
from crucible_train.ports.sampling import SamplingClient
from crucible_train.types import ModelInput, SampleResponse, SamplingParams, TokensWithLogprobs

from fakes._futures import done, failed

DEFAULT_VOCAB = 1024
"""Token ids the fakes' model knows when no ``theta`` says otherwise (0 .. 1023)."""

DEFAULT_MAX_TOKENS = 16
"""Tokens a sample may have when ``SamplingParams.max_tokens`` is ``None``."""

SampleCall = tuple[ModelInput, int, SamplingParams]
"""``(prompt, num_samples, params)`` of one ``sample`` call."""


def log_softmax(theta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Log-probabilities of the unigram model with logits ``theta``."""
    shifted = theta - theta.max()
    result: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum())
    return result


class FakeSamplingClient(SamplingClient):
    """A sampler over a unigram model: every position is drawn from ``softmax(theta)``
    whatever came before, so ``compute_logprobs`` of a token is ``log_softmax(theta)[t]``.

    Args:
        replies: scripted answers; when given, ``sample`` returns ``replies[i]`` (the last
            one repeats) for its ``i``-th call, ``num_samples`` times, instead of sampling.
        theta: the model's logits, one per token id (its length is the vocabulary);
            all zeros (uniform) over :data:`DEFAULT_VOCAB` ids by default.
        fail_with: every future fails with this exception.
        calls: the list to record ``(prompt, num_samples, params)`` in (shared by several
            samplers when given; :attr:`calls` either way).
        events: an event log: each ``sample`` adds ``sample:<n>``, waiting for its result
            ``await sample:<n>``.

    Temperature 0 samples greedily (logprob 0); otherwise ``theta / temperature`` with
    ``top_k`` and ``top_p`` applied, and the logprobs are those of that distribution.
    Integer stop sequences end a sample (the stop token included); string stops are
    ignored, since the fake has no tokenizer. Picklable; thread-safe.
    """

    def __init__(
        self,
        replies: Sequence[TokensWithLogprobs] = (),
        *,
        theta: npt.ArrayLike | None = None,
        fail_with: Exception | None = None,
        calls: list[SampleCall] | None = None,
        events: list[str] | None = None,
    ) -> None:
        self.replies = list(replies)
        self.theta = np.zeros(DEFAULT_VOCAB) if theta is None else np.array(theta, dtype=np.float64)
        self.fail_with = fail_with
        self.calls: list[SampleCall] = [] if calls is None else calls
        self.events = events
        self._answered = 0
        self._rng = np.random.default_rng(0)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model knows."""
        return int(self.theta.shape[0])

    def sample(
        self, prompt: ModelInput, num_samples: int, params: SamplingParams
    ) -> Future[SampleResponse]:
        """Scripted replies, or ``num_samples`` draws from the model (see the class)."""
        with self._lock:
            label = f"sample:{len(self.calls)}"
            self.calls.append((prompt, num_samples, params))
            if self.events is not None:
                self.events.append(label)
            index = self._answered
            self._answered += 1
            try:
                if self.fail_with is not None:
                    raise self.fail_with
                self._check(prompt, require_tokens=True)
                if self.replies:
                    reply = self.replies[min(index, len(self.replies) - 1)]
                    # attrs' converter=tuple hides the element type from mypy (as in src).
                    response = SampleResponse(sequences=[reply] * num_samples)  # type: ignore[list-item]
                    return done(response, self.events, label)
                rng = self._rng if params.seed is None else np.random.default_rng(params.seed)
                sequences = [self._draw(params, rng) for _ in range(num_samples)]
            except Exception as exc:  # the port reports failures through the future
                return failed(exc, self.events, label)
            response = SampleResponse(sequences=sequences)  # type: ignore[arg-type]
            return done(response, self.events, label)

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        """``None``, then ``log_softmax(theta)`` of every later token of ``prompt``."""
        try:
            if self.fail_with is not None:
                raise self.fail_with
            tokens = self._check(prompt, require_tokens=False)
        except Exception as exc:
            return failed(exc)
        table = log_softmax(self.theta)
        values: list[float | None] = [None, *(float(table[t]) for t in tokens[1:])]
        return done(values[: len(tokens)])

    def _check(self, prompt: ModelInput, *, require_tokens: bool) -> list[int]:
        tokens = prompt.to_ints()
        if require_tokens and not tokens:
            raise SamplingClientError("the prompt is empty; give at least one token to continue")
        outside = [t for t in tokens if not 0 <= t < self.vocab_size]
        if outside:
            raise SamplingClientError(
                f"token ids {outside[:5]} are outside the fake model's vocabulary "
                f"0..{self.vocab_size - 1}"
            )
        return tokens

    def _draw(self, params: SamplingParams, rng: np.random.Generator) -> TokensWithLogprobs:
        stops = {s for s in params.stop if isinstance(s, int)}
        limit = params.max_tokens or DEFAULT_MAX_TOKENS
        if params.temperature == 0:
            token = int(np.argmax(self.theta))
            tokens = [token] * limit
            logprobs = [0.0] * limit
        else:
            table = self._processed(params)
            probs = np.exp(table)
            drawn = rng.choice(self.vocab_size, size=limit, p=probs / probs.sum())
            tokens = [int(t) for t in drawn]
            logprobs = [float(table[t]) for t in tokens]
        for position, token in enumerate(tokens):
            if token in stops:
                end = position + 1
                return TokensWithLogprobs(
                    tokens=tokens[:end], logprobs=logprobs[:end], stop_reason="stop"
                )
        return TokensWithLogprobs(tokens=tokens, logprobs=logprobs, stop_reason="length")

    def _processed(self, params: SamplingParams) -> npt.NDArray[np.float64]:
        # log-probabilities after temperature, top-k and top-p; -inf for removed tokens.
        table = log_softmax(self.theta / params.temperature)
        order = np.argsort(-table, kind="stable")
        keep = np.ones(self.vocab_size, dtype=bool)
        if params.top_k != -1:
            keep[order[params.top_k :]] = False
        if params.top_p < 1.0:
            mass = np.cumsum(np.exp(table[order]))
            cut = int(np.searchsorted(mass, params.top_p)) + 1
            keep[order[cut:]] = False
        if keep.all():
            return table
        kept: npt.NDArray[np.float64] = np.where(keep, table, -np.inf)
        renormalised: npt.NDArray[np.float64] = kept - np.log(np.exp(kept).sum())
        return renormalised
