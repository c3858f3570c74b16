"""Held-out exact-match accuracy of greedy answers to arithmetic problems (``test/accuracy``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from crucible_train.core.renderers.base import Renderer
from crucible_train.errors import ConfigurationError
from crucible_train.ports.sampling import SamplingClient
from crucible_train.recipes.arithmetic.task import ArithmeticProblem, ArithmeticTask
from crucible_train.types import SamplingParams

__all__ = ["ArithmeticAccuracyEvaluator"]


class ArithmeticAccuracyEvaluator:
    """Held-out exact-match accuracy of greedy answers to arithmetic problems.

    Renders each problem's prompt, submits every greedy sample (temperature 0, the
    renderer's stop sequences, at most ``max_tokens`` new tokens) before gathering any, and
    compares the parsed assistant message with the answer. Returns ``{name: accuracy}``;
    the runner logs it as ``test/accuracy``.

    Args:
        problems: the problems to answer (the task's test split).
        renderer: the chat format of the model.
        max_tokens: new tokens per answer (answers are at most 4 characters plus a stop).
        name: the metric key.

    Raises:
        ConfigurationError: no problems, or ``max_tokens`` < 1.
    """

    client_kind: Literal["sampling"] = "sampling"

    def __init__(
        self,
        *,
        problems: Sequence[ArithmeticProblem],
        renderer: Renderer,
        max_tokens: int = 8,
        name: str = "accuracy",
    ) -> None:
        self._problems = tuple(problems)
        if not self._problems:
            raise ConfigurationError("ArithmeticAccuracyEvaluator needs at least one problem")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError(
                f"ArithmeticAccuracyEvaluator max_tokens is {max_tokens!r}; use >= 1"
            )
        self._renderer = renderer
        self._prompts = [renderer.build_generation_prompt(p.prompt()) for p in self._problems]
        self._params = SamplingParams(
            max_tokens=max_tokens, temperature=0.0, stop=renderer.get_stop_sequences()
        )
        self._name = name

    @property
    def name(self) -> str:
        """The metric key."""
        return self._name

    def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Answer every problem greedily and return the share answered exactly.

        Raises:
            SamplingClientError: the sampler failed.
        """
        futures = [sampling_client.sample(prompt, 1, self._params) for prompt in self._prompts]
        correct = 0
        for problem, future in zip(self._problems, futures, strict=True):
            sequence = future.result().sequences[0]
            message, _ = self._renderer.parse_response(sequence.tokens)
            content = message.get("content")
            if isinstance(content, str) and ArithmeticTask.is_correct(problem, content):
                correct += 1
        return {self._name: correct / len(self._problems)}
