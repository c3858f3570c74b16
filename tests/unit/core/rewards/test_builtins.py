"""Built-in rewards: scorer rewards over the registry, format, length, Python callables."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crucible_train.core.rewards import (
    FormatReward,
    LengthPenalty,
    PythonReward,
    RewardInput,
    ScorerReward,
    load_callable,
)
from crucible_train.errors import ConfigurationError, InvalidDataError


def _sample(text: str, **kwargs: object) -> RewardInput:
    return RewardInput(
        prompt=[{"role": "user", "content": "q"}],
        completion_text=text,
        **kwargs,  # type: ignore[arg-type]
    )


def test_scorer_reward_reads_its_column_and_passes_scorer_options() -> None:
    reward = ScorerReward(name="num", scorer="numeric_match", options={"abs_tol": 0.5})
    assert reward(_sample("about 7.3", extras={"answer": 7})) == 1.0
    assert reward(_sample("about 8", extras={"answer": 7})) == 0.0


def test_scorer_reward_strips_only_when_asked() -> None:
    sample = _sample(" 7\n", extras={"answer": "7"})
    assert ScorerReward(name="em", scorer="exact_match")(sample) == 0.0
    assert ScorerReward(name="em", scorer="exact_match", strip=True)(sample) == 1.0


def test_scorer_reward_gated_on_format_scores_zero_when_truncated() -> None:
    reward = ScorerReward(name="em", scorer="exact_match", require_format_ok=True)
    assert reward(_sample("7", extras={"answer": "7"}, stop_reason="length")) == 0.0
    assert reward(_sample("7", extras={"answer": "7"}, stop_reason="stop")) == 1.0


def test_target_free_scorer_needs_no_column() -> None:
    reward = ScorerReward(name="re", scorer="regex", options={"pattern": r"^\d+$"})
    assert reward(_sample("42")) == 1.0


def test_missing_column_names_the_row_columns() -> None:
    reward = ScorerReward(name="em", scorer="exact_match", column="solution")
    with pytest.raises(InvalidDataError, match=r"no column 'solution'.*answer"):
        reward(_sample("7", extras={"answer": "7"}))


def test_non_text_column_is_invalid_data() -> None:
    with pytest.raises(InvalidDataError, match="holds list"):
        ScorerReward(name="em", scorer="exact_match")(_sample("7", extras={"answer": [7]}))


@pytest.mark.parametrize(
    ("parse_ok", "stop", "strict", "loose"),
    [(True, "stop", 1.0, 1.0), (True, "length", 0.0, 1.0), (False, "stop", 0.0, 0.0)],
)
def test_format_reward(parse_ok: bool, stop: str, strict: float, loose: float) -> None:
    sample = _sample("x", parse_ok=parse_ok, stop_reason=stop)
    assert FormatReward()(sample) == strict
    assert FormatReward(require_stop=False)(sample) == loose
    assert FormatReward(offset=-1.0)(sample) == strict - 1.0


def test_length_penalty_counts_sampled_tokens_beyond_the_free_ones() -> None:
    penalty = LengthPenalty(free_tokens=3, per_token=0.5)
    assert penalty(_sample("long text", completion_tokens=[1, 2])) == 0.0
    assert penalty(_sample("x", completion_tokens=[1, 2, 3, 4, 5])) == -1.0


@pytest.mark.parametrize(("free", "per"), [(-1, 0.1), (1, -0.1), (1, float("nan"))])
def test_length_penalty_rejects_bad_options(free: int, per: float) -> None:
    with pytest.raises(ConfigurationError, match="option"):
        LengthPenalty(free_tokens=free, per_token=per)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "user_rewards_mod.py").write_text(
        "def short(sample):\n    return 1.0 if len(sample.completion_text) < 5 else 0.0\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_rewards_mod"
    sys.modules.pop("user_rewards_mod", None)


def test_python_reward_imports_once_and_calls_the_function(user_module: str) -> None:
    reward = PythonReward(name="short", function=f"{user_module}:short")
    assert reward(_sample("abc")) == 1.0
    assert reward(_sample("abcdefgh")) == 0.0


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_colon_here", "package.module:function"),
        ("no_such_package_xyz.mod:f", r"does not import: ModuleNotFoundError"),
        ("math:no_such_function", "has no attribute 'no_such_function'"),
        ("math:pi", "is a float, not a callable"),
    ],
)
def test_load_callable_fails_up_front(path: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_callable(path)


def test_a_module_raising_on_import_reports_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_reward_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match="RuntimeError: boom at import"):
        PythonReward(name="b", function="broken_reward_mod:f")
