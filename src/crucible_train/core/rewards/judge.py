"""An LLM judge reward over the :class:`~crucible_train.ports.llm.LLMClient` port.

Core layer. Two modes:

* **rubric** (no ``reference_column``): the judge reads the prompt, the completion and a
  rubric and answers ``Score: N`` on ``0 .. max_score``; the reward is ``N / max_score``.
* **pairwise** (``reference_column`` set): the judge compares the completion with the
  row's reference answer, in both orders (completion first, then reference first), with
  the comparison evaluator's template and verdict parser
  (:data:`~crucible_train.core.evaluation.evaluators.JUDGE_PROMPT_TEMPLATE`,
  :func:`~crucible_train.core.evaluation.evaluators.parse_verdict`,
  :func:`~crucible_train.core.evaluation.evaluators.order_score`), so a judge that favours
  a position cancels out. The reward is the completion's mean score over both orders (win
  1, tie 0.5, loss 0).

An unreadable answer raises :class:`~crucible_train.errors.LLMClientError`, which the
combination counts as a failure of this component (never a silent 0).
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from crucible_train.core.evaluation.evaluators import (
    JUDGE_PROMPT_TEMPLATE,
    order_score,
    parse_verdict,
)
from crucible_train.core.rewards.builtins import column_text
from crucible_train.core.rewards.contract import RewardInput
from crucible_train.errors import ConfigurationError, LLMClientError
from crucible_train.ports.llm import LLMClient, LLMParams

__all__ = ["DEFAULT_RUBRIC", "RUBRIC_TEMPLATE", "JudgeReward", "parse_score"]

DEFAULT_RUBRIC: Final = (
    "Is the response correct, complete and helpful for the prompt? "
    "Penalise errors and irrelevant content."
)

RUBRIC_TEMPLATE: Final = """You are grading a response to a prompt.

[Prompt]
{prompt}

[Response]
{completion}

[Rubric]
{rubric}

Grade the response from 0 (worst) to {max_score} (best) by the rubric. End your answer with
a line "Score: N", where N is a whole number from 0 to {max_score}."""
"""Placeholders: ``{prompt}``, ``{completion}``, ``{rubric}``, ``{max_score}``."""

_SCORE: Final = re.compile(r"score\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_score(text: str, max_score: int) -> float | None:
    """The last ``Score: N`` of a judge's answer divided by ``max_score``.

    None when there is none or N is outside ``0 .. max_score``.
    """
    found = _SCORE.findall(text)
    if not found:
        return None
    value = float(found[-1])
    if not 0.0 <= value <= max_score:
        return None
    return value / max_score


@attrs.frozen(kw_only=True)
class JudgeReward:
    """An LLM judge's grade of the completion, in ``[0, 1]``; see the module docstring.

    Args:
        name: the component's name.
        judge: the LLM client (thread-safe per its port).
        rubric: what the judge grades by (rubric mode).
        template: the rubric prompt (:data:`RUBRIC_TEMPLATE`) or, in pairwise mode, the
            comparison prompt (default :data:`JUDGE_PROMPT_TEMPLATE`).
        max_score: the top of the rubric scale.
        reference_column: pairwise mode against this extra column.
        params: judge generation settings (default: temperature 0, 512 tokens).
    """

    name: str = "judge"
    judge: LLMClient
    rubric: str = DEFAULT_RUBRIC
    template: str | None = None
    max_score: int = 10
    reference_column: str | None = None
    params: LLMParams = attrs.field(factory=lambda: LLMParams(temperature=0.0, max_tokens=512))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.judge, LLMClient):
            raise ConfigurationError(
                f"reward {self.name!r} needs an LLMClient as its judge, got "
                f"{type(self.judge).__name__}"
            )
        if isinstance(self.max_score, bool) or not isinstance(self.max_score, int):
            raise ConfigurationError(
                f"reward {self.name!r} option max_score must be an integer >= 1"
            )
        if self.max_score < 1:
            raise ConfigurationError(
                f"reward {self.name!r} option max_score must be >= 1, got {self.max_score}"
            )
        # Fail at build time, not on the first sample, when a placeholder is misspelt.
        try:
            self._template().format(
                prompt="", completion="", rubric="", max_score=1, response_a="", response_b=""
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigurationError(
                f"reward {self.name!r} template is invalid ({type(exc).__name__}: {exc}); "
                "placeholders: {prompt}, {completion}, {rubric}, {max_score} (rubric mode) or "
                "{prompt}, {response_a}, {response_b} (pairwise mode)"
            ) from exc

    def _template(self) -> str:
        if self.template is not None:
            return self.template
        return RUBRIC_TEMPLATE if self.reference_column is None else JUDGE_PROMPT_TEMPLATE

    def _ask(self, content: str) -> str:
        return self.judge.chat([{"role": "user", "content": content}], self.params).text

    def __call__(self, sample: RewardInput) -> float:
        """Ask the judge (once in rubric mode, twice in pairwise mode).

        Raises:
            LLMClientError: the judge failed or its answer is unreadable.
            InvalidDataError: the reference column is missing.
        """
        if self.reference_column is None:
            answer = self._ask(
                self._template().format(
                    prompt=sample.prompt_text,
                    completion=sample.completion_text,
                    rubric=self.rubric,
                    max_score=self.max_score,
                )
            )
            value = parse_score(answer, self.max_score)
            if value is None:
                raise LLMClientError(
                    f"judge answer has no 'Score: N' with N in 0..{self.max_score}: "
                    f"{answer[-200:]!r}"
                )
            return value
        reference = column_text(sample, self.reference_column)
        scores = []
        for completion_first in (True, False):
            first, second = (
                (sample.completion_text, reference)
                if completion_first
                else (reference, sample.completion_text)
            )
            answer = self._ask(
                self._template().format(
                    prompt=sample.prompt_text, response_a=first, response_b=second
                )
            )
            verdict = parse_verdict(answer)
            if verdict is None:
                raise LLMClientError(f"judge verdict is unreadable: {answer[-200:]!r}")
            scores.append(order_score(verdict, completion_first))
        return sum(scores) / len(scores)
