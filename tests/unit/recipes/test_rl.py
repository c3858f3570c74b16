"""The ``train rl`` recipe: RlConfig (task defaults, rewards checked up front) and
run_rl_job on a prompt dataset (metrics, test_dataset, bad input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.job import JobContext
from crucible_train.errors import ConfigurationError, InvalidDataError, RewardError
from crucible_train.recipes.rl import RlConfig, run_rl_job
from crucible_train.types import TokensWithLogprobs

from fakes import FakeMetricsSink, FakeRunStore, FakeSamplingClient, FakeTrainingClient

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


@pytest.fixture
def renderer() -> Renderer:
    return get_renderer(
        "qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    )


def _reply(renderer: Renderer, text: str) -> TokensWithLogprobs:
    tokens = [
        *renderer.tokenizer.encode(text, allow_special=False),
        *[int(t) for t in renderer.get_stop_sequences()],
    ]
    return TokensWithLogprobs(tokens=tokens, logprobs=[-0.5] * len(tokens), stop_reason="stop")


def _ctx(
    tmp_path: Path, renderer: Renderer, replies: list[str]
) -> tuple[JobContext, FakeTrainingClient, FakeMetricsSink]:
    sampler = FakeSamplingClient([_reply(renderer, r) for r in replies])
    client = FakeTrainingClient(sampler=sampler)
    store = FakeRunStore()
    ctx = JobContext(
        training=client,
        renderer=renderer,
        datasets=FilesDatasetStore(root=str(tmp_path)),
        metrics=store.metrics,
        run_store=store,
    )
    return ctx, client, store.metrics


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _qa(n: int) -> list[dict[str, Any]]:
    return [{"question": f"say {i % 2}", "solution": str(i % 2)} for i in range(n)]


def _config(path: str, **kwargs: Any) -> RlConfig:
    settings: dict[str, Any] = {
        "dataset": path,
        "prompt_key": "question",
        "answer_key": "solution",
        "reward": {"name": "exact_match", "column": "solution", "strip": True},
        "groups_per_batch": 2,
        "group_size": 2,
        "max_steps": 2,
        "eval_every": 1,
        "save_every": 0,
    }
    return RlConfig(**(settings | kwargs))


# --- config -------------------------------------------------------------------------------


def test_null_learning_rate_and_max_tokens_are_the_tasks_defaults() -> None:
    arithmetic = RlConfig().loop_config()
    assert (arithmetic.learning_rate, arithmetic.max_tokens) == (8e-5, 8)
    dataset = RlConfig(dataset="qa.jsonl").loop_config()
    assert (dataset.learning_rate, dataset.max_tokens) == (2e-4, 64)
    mine = RlConfig(dataset="qa.jsonl", learning_rate=1e-3, max_tokens=5).loop_config()
    assert (mine.learning_rate, mine.max_tokens) == (1e-3, 5)


def test_the_default_rewards_are_the_tasks() -> None:
    assert [s["label"] for s in RlConfig().reward_specs()] == ["correct", "format_penalty"]  # type: ignore[index, union-attr]
    assert RlConfig(dataset="qa.jsonl", answer_key="solution").reward_specs() == {
        "name": "exact_match",
        "column": "solution",
    }


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ("exact", r"unknown reward 'exact'; valid names: .*exact_match"),
        ({"name": "exact_match", "colour": "red"}, "colour"),
        ("no_such_module_xyz:f", "does not import"),
        ("math:pi", "not a callable"),
        (["format", "format"], "share the label"),
    ],
)
def test_bad_rewards_fail_when_the_config_is_built(reward: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RlConfig(dataset="qa.jsonl", reward=reward)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_reward_failure_rate", 1.5), ("learning_rate", 0.0), ("dataset", " ")],
)
def test_bad_values_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RlConfig(**{field: value})


# --- the job on a dataset -----------------------------------------------------------------


def test_a_dataset_run_logs_the_rl_metrics_and_the_test_reward(
    tmp_path: Path, renderer: Renderer
) -> None:
    train = _jsonl(tmp_path / "train.jsonl", _qa(4))
    test = _jsonl(tmp_path / "test.jsonl", _qa(3))
    ctx, client, sink = _ctx(tmp_path, renderer, ["0", "1"])
    result = run_rl_job(ctx, _config(train, test_dataset=test))
    assert result.steps_done == 2
    assert client.lrs == [2e-4, 2e-4]
    train_rows = [row for _, row in sink.rows if "reward/mean" in row]
    assert {
        "reward/std",
        "reward/exact_match/mean",
        "reward/exact_match/failures",
        "frac_groups_zero_std",
        "completion/tokens_mean",
        "completion/tokens_max",
        "completion/truncated",
        "completion/parse_ok",
        "time/train_s",
    } <= set(train_rows[0])
    tests = [row for _, row in sink.rows if "test/reward" in row]
    assert len(tests) == 3  # steps 0, 1 and after the last
    assert set(tests[0]) == {"test/reward", "test/exact_match"}


def test_a_row_without_the_answer_column_names_file_row_and_columns(
    tmp_path: Path, renderer: Renderer
) -> None:
    rows = _qa(3)
    del rows[1]["solution"]
    path = _jsonl(tmp_path / "qa.jsonl", rows)
    ctx, _, _ = _ctx(tmp_path, renderer, ["0"])
    with pytest.raises(InvalidDataError, match=r"qa.jsonl:2: .*'solution'.*the row has 'question'"):
        run_rl_job(ctx, _config(path))


def test_a_row_without_the_prompt_column_is_refused(tmp_path: Path, renderer: Renderer) -> None:
    path = _jsonl(tmp_path / "qa.jsonl", [{"q": "x", "solution": "1"}])
    ctx, _, _ = _ctx(tmp_path, renderer, ["0"])
    with pytest.raises(InvalidDataError, match=r"qa.jsonl:1: .*'question'"):
        run_rl_job(ctx, _config(path))


def test_an_empty_dataset_is_refused(tmp_path: Path, renderer: Renderer) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text("")
    ctx, _, _ = _ctx(tmp_path, renderer, ["0"])
    with pytest.raises(InvalidDataError, match="holds no rows"):
        run_rl_job(ctx, _config(str(path)))


def test_more_groups_per_batch_than_rows_is_refused(tmp_path: Path, renderer: Renderer) -> None:
    path = _jsonl(tmp_path / "qa.jsonl", _qa(3))
    ctx, _, _ = _ctx(tmp_path, renderer, ["0"])
    with pytest.raises(ConfigurationError, match="groups_per_batch 4 is larger than the 3"):
        run_rl_job(ctx, _config(path, groups_per_batch=4))


def test_a_reward_failing_too_often_stops_the_run_with_its_first_error(
    tmp_path: Path, renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_rewards_rl.py").write_text(
        "def picky(sample):\n"
        "    if sample.completion_text == '1':\n"
        "        raise ValueError('no ones')\n"
        "    return float('nan') if sample.completion_text == '2' else 0.5\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _jsonl(tmp_path / "qa.jsonl", _qa(4))
    reward = "my_rewards_rl:picky"
    # 1 of an iteration's 2 samples fails: within a 0.5 rate, the run goes on without it.
    ctx, _, sink = _ctx(tmp_path, renderer, ["0", "1", "0", "1"])
    run_rl_job(ctx, _config(path, reward=reward, max_reward_failure_rate=0.5, group_size=1))
    assert [row["reward/picky/failures"] for _, row in sink.rows if "reward/mean" in row] == [
        1.0,
        1.0,
    ]
    ctx, _, _ = _ctx(tmp_path, renderer, ["0", "1"])
    with pytest.raises(RewardError, match=r"'picky' failed on 1 of 2 rows.*raised ValueError"):
        run_rl_job(ctx, _config(path, reward=reward, max_reward_failure_rate=0.25, group_size=1))
    ctx, _, _ = _ctx(tmp_path, renderer, ["2"])
    with pytest.raises(RewardError, match="returned nan"):
        run_rl_job(ctx, _config(path, reward=reward, group_size=1))
