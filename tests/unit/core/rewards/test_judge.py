"""The LLM judge reward: rubric grades and position-debiased pairwise verdicts."""

from __future__ import annotations

import pytest

from crucible_train.core.rewards import JudgeReward, RewardInput
from crucible_train.core.rewards.judge import parse_score
from crucible_train.errors import ConfigurationError, LLMClientError

from fakes import FakeLLMClient


def _sample(text: str, reference: str = "ref") -> RewardInput:
    return RewardInput(
        prompt=[{"role": "user", "content": "What is 2+2?"}],
        completion_text=text,
        extras={"reference": reference},
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("good. Score: 8", 0.8), ("Score: 3\nScore: 10", 1.0), ("**Score:** 5", 0.5), ("no", None)],
)
def test_parse_score(answer: str, expected: float | None) -> None:
    assert parse_score(answer, 10) == expected


def test_parse_score_rejects_out_of_scale() -> None:
    assert parse_score("Score: 11", 10) is None


def test_rubric_mode_shows_prompt_completion_and_rubric() -> None:
    llm = FakeLLMClient("Score: 7")
    reward = JudgeReward(judge=llm, rubric="be exact")
    assert reward(_sample("four")) == pytest.approx(0.7)
    (prompt,) = llm.prompts
    for shown in ("What is 2+2?", "four", "be exact"):
        assert shown in prompt


def test_unreadable_grade_is_an_error_not_a_zero() -> None:
    with pytest.raises(LLMClientError, match="no 'Score: N'"):
        JudgeReward(judge=FakeLLMClient("I like it"))(_sample("four"))


def test_pairwise_judges_both_orders_so_position_bias_cancels() -> None:
    # A judge that always prefers the first response shown: completion wins once, loses once.
    llm = FakeLLMClient("Verdict: A")
    reward = JudgeReward(judge=llm, reference_column="reference")
    assert reward(_sample("mine", "theirs")) == 0.5
    first, second = llm.prompts
    assert first.index("mine") < first.index("theirs")
    assert second.index("theirs") < second.index("mine")


def test_pairwise_consistent_win() -> None:
    llm = FakeLLMClient(
        lambda p: "Verdict: A" if p.index("mine") < p.index("ref") else "Verdict: B"
    )
    assert JudgeReward(judge=llm, reference_column="reference")(_sample("mine")) == 1.0


def test_bad_template_fails_at_build_time() -> None:
    with pytest.raises(ConfigurationError, match="template is invalid"):
        JudgeReward(judge=FakeLLMClient(), template="{answer}")


def test_judge_must_be_an_llm_client() -> None:
    with pytest.raises(ConfigurationError, match="needs an LLMClient"):
        JudgeReward(judge="gpt")  # type: ignore[arg-type]
