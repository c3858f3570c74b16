"""build_reward / build_rewards: names, options, Python paths, and arithmetic's reward."""

from __future__ import annotations

import pytest

from crucible_train.core import scoring
from crucible_train.core.rewards import (
    JudgeReward,
    LengthPenalty,
    PythonReward,
    RewardInput,
    ScorerReward,
    build_reward,
    build_rewards,
    list_rewards,
)
from crucible_train.errors import ConfigurationError

from fakes import FakeEmbeddingClient, FakeLLMClient


def test_every_registered_scorer_is_a_reward() -> None:
    assert set(scoring.BUILTIN_SCORERS) <= set(list_rewards())
    assert {"format", "length", "judge", "python"} <= set(list_rewards())
    for name in scoring.BUILTIN_SCORERS:
        options = {"pattern": "x"} if name == "regex" else {}
        component = build_reward({"name": name, **options}, embedding=FakeEmbeddingClient())
        assert isinstance(component.reward, ScorerReward)
        assert component.reward.scorer == name


def test_a_name_string_a_mapping_a_weight_and_a_label() -> None:
    assert build_reward("token_f1").weight == 1.0
    component = build_reward(
        {"name": "contains", "weight": 0.5, "label": "has", "ignore_case": True}
    )
    assert (component.name, component.weight) == ("has", 0.5)
    sample = RewardInput(prompt=[], completion_text="The PARIS", extras={"answer": "paris"})
    assert component.reward(sample) == 1.0


def test_semantic_similarity_uses_the_embedding_client_given_to_the_builder() -> None:
    client = FakeEmbeddingClient()
    component = build_reward("semantic_similarity", embedding=client)
    sample = RewardInput(prompt=[], completion_text="cat", extras={"answer": "cat"})
    assert component.reward(sample) == pytest.approx(1.0)
    assert client.calls == [["cat"]]


def test_unknown_reward_lists_the_valid_names() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown reward 'exact'.*exact_match.*format"):
        build_reward("exact")


def test_an_option_the_scorer_does_not_take_lists_its_options() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"option\(s\) tolerance; it accepts: abs_tol, rel_tol.*reward options: column",
    ):
        build_reward({"name": "numeric_match", "tolerance": 0.1})


def test_a_bad_scorer_option_value_fails_at_build_time() -> None:
    with pytest.raises(ConfigurationError, match="needs the option pattern"):
        build_reward("regex")
    with pytest.raises(ConfigurationError, match="rel_tol must be a finite number"):
        build_reward({"name": "numeric_match", "rel_tol": -1})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "format", "coef": 0.1},
            r"unknown option\(s\) coef; it accepts: label, name, offset, require_stop, weight",
        ),
        ({"name": "length", "free_tokens": "ten"}, "free_tokens must be an integer"),
        ({"name": "format", "weight": "heavy"}, "weight must be a finite number"),
        ({"name": "exact_match", "strip": "yes"}, "strip must be true or false"),
        ({"weight": 1.0}, "needs a name; valid names"),
        ({"name": "python"}, "needs the option function"),
        ({"name": "judge"}, "needs an LLM client"),
        (3, "a reward spec is a name or a mapping"),
    ],
)
def test_bad_specs(spec: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_reward(spec)  # type: ignore[arg-type]


def test_python_path_shorthand_imports_at_build_time() -> None:
    component = build_reward("os.path:basename")
    assert isinstance(component.reward, PythonReward)
    assert component.name == "basename"
    with pytest.raises(ConfigurationError, match="does not import"):
        build_reward({"name": "python", "function": "not_a_module_qq:f"})


def test_judge_and_length_options_reach_the_reward() -> None:
    judge = build_reward(
        {"name": "judge", "max_score": 5, "temperature": 0.3, "max_tokens": 64},
        llm=FakeLLMClient("Score: 4"),
    ).reward
    assert isinstance(judge, JudgeReward)
    assert (judge.max_score, judge.params.temperature, judge.params.max_tokens) == (5, 0.3, 64)
    length = build_reward({"name": "length", "free_tokens": 2, "per_token": 0.5}).reward
    assert length == LengthPenalty(name="length", free_tokens=2, per_token=0.5)


def test_build_rewards_combines_and_rejects_duplicate_labels() -> None:
    combo = build_rewards(["exact_match", {"name": "format", "weight": 0.1}], max_failure_rate=0.2)
    assert combo.names == ("exact_match", "format")
    assert combo.max_failure_rate == 0.2
    with pytest.raises(ConfigurationError, match="share the label"):
        build_rewards(["format", "format"])
