"""The distill recipe on a dataset: its prompts in every row format, the held-out teacher KL,
the config's refusals, and a resumed run drawing the rollouts of an uninterrupted one (fakes)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.job import JobContext
from crucible_train.core.training.prompt_rows import PromptRowDataset
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.recipes.distill import DistillConfig, distill_prompts, run_distill_job

from fakes import (
    FakeDatasetStore,
    FakeMetricsSink,
    FakeRunStore,
    FakeSamplingClient,
    FakeTrainingClient,
    FakeTrainingState,
)
from fakes.tokenizer import FakeTokenizer

USER = "user"


def _renderer() -> Renderer:
    return get_renderer(
        "qwen3_instruct",
        FakeTokenizer(special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos=None),
    )


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _prompts(store: FakeDatasetStore, name: str, key: str = "prompt") -> list[Any]:
    return [row.prompt for row in distill_prompts(store, name, key)]


# --- the prompts of a dataset -------------------------------------------------------------


def test_every_row_format_gives_its_prompt() -> None:
    question = ({"role": USER, "content": "2+2?"},)
    system = {"role": "system", "content": "be brief"}
    store = FakeDatasetStore(
        {
            "q.jsonl": _jsonl([{"question": "2+2?", "answer": 4}]),
            "msgs.jsonl": _jsonl([{"prompt": [system, question[0]]}]),
            "pc.jsonl": _jsonl([{"prompt": "2+2?", "completion": "4"}]),
            "conv.jsonl": _jsonl(
                [
                    {"messages": [question[0], {"role": "assistant", "content": "4"}]},
                    {"messages": [system, question[0]]},  # no reply: all of it is the prompt
                ]
            ),
        }
    )
    assert _prompts(store, "q.jsonl", "question") == [question]
    assert _prompts(store, "msgs.jsonl") == [(system, question[0])]
    assert _prompts(store, "pc.jsonl") == [question]
    assert _prompts(store, "conv.jsonl") == [question, (system, question[0])]


def test_bad_prompt_rows_name_the_row_and_its_columns() -> None:
    store = FakeDatasetStore(
        {
            "a.jsonl": _jsonl([{"question": "x"}, {"text": "y"}]),
            "b.jsonl": _jsonl([{"messages": [{"role": "assistant", "content": "hi"}]}]),
            "empty.jsonl": "",
        }
    )
    with pytest.raises(InvalidDataError) as info:
        _prompts(store, "a.jsonl", "question")
    assert "a.jsonl:2: a prompt row needs column(s) 'question'; the row has 'text'" in str(
        info.value
    )
    with pytest.raises(InvalidDataError, match=r"b.jsonl:1: a conversation used as a prompt"):
        _prompts(store, "b.jsonl")
    with pytest.raises(InvalidDataError, match=r"empty.jsonl: the dataset holds no rows"):
        _prompts(store, "empty.jsonl")


def test_the_config_refuses_a_test_dataset_for_arithmetic_and_blank_names() -> None:
    DistillConfig(dataset="p.jsonl", test_dataset="t.jsonl")
    with pytest.raises(ConfigurationError, match=r"test_dataset: the arithmetic task"):
        DistillConfig(test_dataset="t.jsonl")
    for field in ("dataset", "prompt_key", "teacher"):
        with pytest.raises(ConfigurationError, match=field):
            DistillConfig(**{field: " "})


# --- the job on a dataset -----------------------------------------------------------------


ROWS = [{"prompt": f"question {i}"} for i in range(5)]
HELD_OUT = [{"prompt": f"held out {i}"} for i in range(3)]


def _job(
    states: dict[str, FakeTrainingState],
    run: FakeRunStore,
    calls: list[Any],
    *,
    stop_after: int | None = None,
    resume: bool = False,
    **overrides: Any,
) -> tuple[Any, FakeRunStore]:
    """One invocation of ``train distill`` on ``ROWS`` (the run's rows kept in ``run``)."""
    stop = threading.Event()

    def keep_and_maybe_stop(step: int | None, metrics: Mapping[str, Any]) -> None:
        run.metrics.log_metrics(metrics, step)
        if stop_after is not None and step is not None and step + 1 >= stop_after:
            stop.set()

    settings: dict[str, Any] = {
        "dataset": "p.jsonl",
        "groups_per_batch": 2,
        "group_size": 2,
        "max_steps": 6,
        "save_every": 2,
        "eval_every": 0,
        "seed": 3,
    }
    settings.update(overrides)
    ctx = JobContext(
        training=FakeTrainingClient(states=states, sample_calls=calls),
        renderer=_renderer(),
        datasets=FakeDatasetStore({"p.jsonl": _jsonl(ROWS), "t.jsonl": _jsonl(HELD_OUT)}),
        metrics=FakeMetricsSink(on_metrics=keep_and_maybe_stop),
        run_store=run,
        stop=stop,
        resume=resume,
        teacher=FakeSamplingClient(),
    )
    return run_distill_job(ctx, DistillConfig(**settings)), run


def test_a_dataset_run_samples_its_rows_in_seeded_order() -> None:
    calls: list[Any] = []
    result, run = _job({}, FakeRunStore(), calls)
    assert result.steps_done == 6
    assert all("teacher_kl" in row for _, row in run.metrics.rows)
    renderer = _renderer()
    rows = distill_prompts(FakeDatasetStore({"p.jsonl": _jsonl(ROWS)}), "p.jsonl", "prompt")
    dataset = PromptRowDataset(
        rows=rows, renderer=renderer, groups_per_batch=2, group_size=2, shuffle_seed=3
    )
    expected = [
        renderer.build_generation_prompt(row.prompt)
        for batch in range(6)
        for row in dataset.rows_of_batch(batch)
    ]
    sampled = [prompt for prompt, _, _ in calls]
    # Each group's prompt, sampled group_size times (one call per sample or per group).
    assert [p for i, p in enumerate(sampled) if i == 0 or p != sampled[i - 1]] == expected


def test_a_test_dataset_gives_the_held_out_teacher_kl() -> None:
    result, run = _job({}, FakeRunStore(), [], max_steps=2, eval_every=1, test_dataset="t.jsonl")
    assert "test/teacher_kl" in result.last_metrics
    assert "test/accuracy" not in result.last_metrics
    assert [step for step, row in run.metrics.rows if "test/teacher_kl" in row] == [0, 1, 2]


def test_a_resumed_dataset_run_draws_the_rollouts_of_an_uninterrupted_one() -> None:
    whole_calls: list[Any] = []
    _, whole = _job({}, FakeRunStore(), whole_calls)
    parts_calls: list[Any] = []
    states: dict[str, FakeTrainingState] = {}
    first, parts = _job(states, FakeRunStore(), parts_calls, stop_after=3)
    assert first.interrupted
    second, parts = _job(states, parts, parts_calls, resume=True)
    assert second.resumed_from == 3
    assert second.steps_done == 6
    assert parts_calls == whole_calls

    def rows(run: FakeRunStore) -> list[Any]:
        return [
            (step, {k: v for k, v in row.items() if not k.startswith("time/")})
            for step, row in run.metrics.rows
        ]

    assert rows(parts) == rows(whole)
