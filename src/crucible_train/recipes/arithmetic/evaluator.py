"""Held-out exact-match accuracy of greedy answers to arithmetic problems (``test/accuracy``)."""

from __future__ import annotations

from collections.abc import Sequence

from crucible_train.core.evaluation.reward_evaluator import RewardEvaluator
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.rewards import build_rewards
from crucible_train.errors import ConfigurationError
from crucible_train.recipes.arithmetic.task import ArithmeticProblem, arithmetic_rows

__all__ = ["ACCURACY_REWARD", "ArithmeticAccuracyEvaluator"]

ACCURACY_REWARD = {"name": "exact_match", "label": "correct", "strip": True}
"""What ``test/accuracy`` scores: the parsed answer, stripped, equals the exact answer."""


class ArithmeticAccuracyEvaluator(RewardEvaluator):
    """Held-out exact-match accuracy of greedy answers to arithmetic problems.

    A :class:`~crucible_train.core.evaluation.reward_evaluator.RewardEvaluator` over the
    problems' prompt rows with the :data:`ACCURACY_REWARD`: every greedy sample
    (temperature 0, the renderer's stop sequences, at most ``max_tokens`` new tokens) is
    submitted before any is gathered, and the parsed assistant message is compared with
    the answer. Returns ``{name: accuracy}``; the runner logs it as ``test/accuracy``.

    Args:
        problems: the problems to answer (the task's test split).
        renderer: the chat format of the model.
        max_tokens: new tokens per answer (answers are at most 4 characters plus a stop).
        name: the metric key.

    Raises:
        ConfigurationError: no problems, or ``max_tokens`` < 1.
    """

    def __init__(
        self,
        *,
        problems: Sequence[ArithmeticProblem],
        renderer: Renderer,
        max_tokens: int = 8,
        name: str = "accuracy",
    ) -> None:
        if not problems:
            raise ConfigurationError("ArithmeticAccuracyEvaluator needs at least one problem")
        super().__init__(
            rows=arithmetic_rows(problems),
            renderer=renderer,
            reward=build_rewards(ACCURACY_REWARD),
            max_tokens=max_tokens,
            name=name,
            components=False,
        )
