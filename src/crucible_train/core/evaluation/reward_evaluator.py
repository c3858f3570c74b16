"""Greedy answers to held-out prompt rows, scored with a reward (``test/reward``).

Core layer. :class:`RewardEvaluator` is a sampling-client evaluator for the
:class:`~crucible_train.core.evaluation.evaluators.EvaluatorRunner`: it renders each row's
generation prompt, submits every greedy sample (temperature 0, the renderer's stop
sequences) before gathering any, and scores all the answers with ONE
:meth:`~crucible_train.core.rewards.CombinedReward.score_batch` call. It returns
``reward`` (the mean weighted total over the rows that have one) and one entry per
component label (its mean unweighted value); the runner logs them as ``test/reward`` and
``test/<label>``. :func:`completion_input` is the reward's view of one sampled answer,
shared with the RL loop's batch rewarder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from crucible_train.core.datasets import PromptRow
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.rewards import CombinedReward, RewardInput
from crucible_train.errors import ConfigurationError
from crucible_train.ports.sampling import SamplingClient
from crucible_train.types import SamplingParams, TokensWithLogprobs

__all__ = ["RewardEvaluator", "completion_input"]


def completion_input(row: PromptRow, action: TokensWithLogprobs, renderer: Renderer) -> RewardInput:
    """The reward's view of ``action`` sampled for ``row``: the renderer's parse of the
    sampled tokens (message, text, ``parse_ok``), the ids themselves, the stop reason and
    the row's prompt and extra columns."""
    message, ok = renderer.parse_response(list(action.tokens))
    content = message.get("content")
    return RewardInput(
        prompt=row.prompt,
        completion_message=message,
        completion_text=content if isinstance(content, str) else "",
        completion_tokens=action.tokens,
        parse_ok=ok,
        stop_reason=action.stop_reason,
        extras=row.extras,
    )


def _mean(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else float("nan")


class RewardEvaluator:
    """Mean reward of greedy answers to ``rows`` (see the module docstring).

    Args:
        rows: the held-out prompt rows.
        renderer: the chat format of the model.
        reward: the combined reward (the run's, or a test-only one).
        max_tokens: new tokens per answer.
        name: the key of the mean total (``reward``: logged as ``test/reward``).
        components: also return each component's mean under its label; ``False`` returns
            the mean total only (a single-number metric such as ``test/accuracy``).

    Raises:
        ConfigurationError: no rows, ``max_tokens`` < 1, or a component label equal to
            ``name``.
    """

    client_kind: Literal["sampling"] = "sampling"

    def __init__(
        self,
        *,
        rows: Sequence[PromptRow],
        renderer: Renderer,
        reward: CombinedReward,
        max_tokens: int,
        name: str = "reward",
        components: bool = True,
    ) -> None:
        self._rows = tuple(rows)
        if not self._rows:
            raise ConfigurationError("RewardEvaluator needs at least one prompt row")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError(f"RewardEvaluator max_tokens is {max_tokens!r}; use >= 1")
        self._components = components
        if components and name in reward.names:
            raise ConfigurationError(
                f"a reward component is labelled {name!r}, the evaluator's own key; relabel it"
            )
        self._renderer = renderer
        self._reward = reward
        self._name = name
        self._prompts = [renderer.build_generation_prompt(row.prompt) for row in self._rows]
        self._params = SamplingParams(
            max_tokens=max_tokens, temperature=0.0, stop=renderer.get_stop_sequences()
        )

    @property
    def name(self) -> str:
        """The key of the mean total."""
        return self._name

    def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Answer every row greedily and return the mean total and per-component means.

        Raises:
            SamplingClientError: the sampler failed.
            RewardError: a component failed on more than its allowed share of the rows.
        """
        futures = [sampling_client.sample(prompt, 1, self._params) for prompt in self._prompts]
        samples = [
            completion_input(row, future.result().sequences[0], self._renderer)
            for row, future in zip(self._rows, futures, strict=True)
        ]
        batch = self._reward.score_batch(samples)
        out = {self._name: _mean(batch.totals)}
        if self._components:
            for label, values in batch.values.items():
                out[label] = _mean(values)
        return out
