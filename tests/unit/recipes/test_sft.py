"""The ``train sft`` recipe: data, evaluators and bad input of run_sft_job; SftConfig."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.job import JobContext
from crucible_train.core.training.sft import SftLoopConfig
from crucible_train.errors import ConfigurationError, DatasetNotFoundError, InvalidDataError
from crucible_train.recipes.sft import SftConfig, run_sft_job
from crucible_train.types import TokensWithLogprobs

from fakes import FakeMetricsSink, FakeRunStore, FakeSamplingClient, FakeTrainingClient

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


class NotingProgress:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.advanced: list[int] = []

    def start(self, total_steps: int, first_step: int, description: str) -> None:
        self.total = total_steps

    def advance(self, step: int, metrics: Mapping[str, float]) -> None:
        self.advanced.append(step)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def finish(self) -> None:
        self.finished = True


def _ctx(
    tmp_path: Path,
) -> tuple[JobContext, FakeTrainingClient, FakeMetricsSink, NotingProgress, FakeRunStore]:
    renderer = get_renderer(
        "qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    )
    # The evaluation samples get an empty answer (no arithmetic answer to score).
    empty = TokensWithLogprobs(tokens=(), stop_reason="stop")
    client = FakeTrainingClient(sampler=FakeSamplingClient([empty]))
    store = FakeRunStore()
    sink = store.metrics
    progress = NotingProgress()
    ctx = JobContext(
        training=client,
        renderer=renderer,
        datasets=FilesDatasetStore(root=str(tmp_path)),
        metrics=sink,
        run_store=store,
        progress=progress,
    )
    return ctx, client, sink, progress, store


def _keys(sink: FakeMetricsSink) -> set[str]:
    return {key for _, row in sink.rows for key in row}


def _chat(question: str, answer: str | None) -> dict[str, Any]:
    messages = [{"role": "user", "content": question}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_arithmetic_job_trains_and_logs_test_nll_and_accuracy(tmp_path: Path) -> None:
    ctx, client, sink, progress, store = _ctx(tmp_path)
    config = SftConfig(
        max_operand=9, batch_size=8, max_steps=3, eval_every=2, save_every=2, test_size=5
    )
    result = run_sft_job(ctx, config)
    assert result.steps_done == 3
    assert not result.interrupted
    assert len(client.trained) == 3
    keys = _keys(sink)
    assert {"test/nll", "test/accuracy", "train/nll", "lr", "data/skipped"} <= keys
    eval_steps = [step for step, row in sink.rows if "test/accuracy" in row]
    assert eval_steps == [0, 2, 3]
    assert len(client.sampler.calls) == 3 * 5
    assert client.sampler.calls[0][2].max_tokens == config.eval_max_tokens
    assert progress.advanced == [0, 1, 2]
    assert store.records[-1].final


def test_jsonl_job_skips_untrainable_conversations_and_counts_them(tmp_path: Path) -> None:
    ctx, client, sink, progress, _store = _ctx(tmp_path)
    train = _jsonl(
        tmp_path / "train.jsonl",
        [_chat("a", "b"), _chat("c", None), _chat("d", "e"), _chat("f", "g")],
    )
    test = _jsonl(tmp_path / "test.jsonl", [_chat("h", "i")])
    config = SftConfig(dataset=train, test_dataset=test, batch_size=3, max_steps=1, eval_every=0)
    run_sft_job(ctx, config)
    assert len(client.trained) == 1
    assert (0, {"data/skipped": 1.0}) in sink.rows
    assert any("skipped 1 of 4 training conversations" in note for note in progress.notes)
    keys = _keys(sink)
    assert "test/nll" in keys
    assert "test/accuracy" not in keys


def test_batch_larger_than_the_dataset_names_both_numbers(tmp_path: Path) -> None:
    ctx, *_ = _ctx(tmp_path)
    train = _jsonl(tmp_path / "train.jsonl", [_chat("a", "b"), _chat("c", None)])
    with pytest.raises(
        ConfigurationError, match=r"batch_size 4 is larger than the training set \(1 examples"
    ):
        run_sft_job(ctx, SftConfig(dataset=train, batch_size=4))


def test_all_conversations_untrainable_is_refused(tmp_path: Path) -> None:
    ctx, *_ = _ctx(tmp_path)
    train = _jsonl(tmp_path / "train.jsonl", [_chat("a", None)])
    with pytest.raises(ConfigurationError, match=r"no training conversation .* trainable token"):
        run_sft_job(ctx, SftConfig(dataset=train, batch_size=1))


def test_missing_empty_and_malformed_datasets_name_the_file(tmp_path: Path) -> None:
    ctx, *_ = _ctx(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"nope\.jsonl"):
        run_sft_job(ctx, SftConfig(dataset="nope.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InvalidDataError, match=r"empty\.jsonl: the dataset holds no records"):
        run_sft_job(ctx, SftConfig(dataset=str(tmp_path / "empty.jsonl")))
    bad = _jsonl(tmp_path / "bad.jsonl", [_chat("a", "b"), {"text": "x"}])
    with pytest.raises(InvalidDataError, match=r"bad.jsonl:2: expected"):
        run_sft_job(ctx, SftConfig(dataset=bad))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("batch_size", 0),
        ("max_steps", 0),
        ("warmup_steps", -1),
        ("eval_every", -1),
        ("save_every", 1.5),
        ("beta2", 1.0),
        ("eps", 0.0),
        ("grad_clip_norm", -1.0),
        ("dataset", " "),
        ("test_dataset", ""),
        ("test_size", 0),
        ("max_operand", 0),
        ("train_on_what", "everything"),
        ("max_length", 1),
        ("normalize_weights", "yes"),
        ("eval_max_tokens", 0),
        ("lr_schedule", "exponential"),
    ],
)
def test_bad_config_values_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        SftConfig(**{field: value})  # type: ignore[arg-type]


def test_defaults_are_valid() -> None:
    config = SftConfig()
    assert config.dataset == "arithmetic"
    assert config.test_dataset is None
    assert config.adam(1e-3).learning_rate == 1e-3


def test_the_recipe_config_extends_the_loop_config_keeping_its_defaults() -> None:
    config = SftConfig()
    assert isinstance(config, SftLoopConfig)
    loop = SftLoopConfig()
    for field in attrs.fields(SftLoopConfig):
        assert getattr(config, field.name) == getattr(loop, field.name), field.name
    # The YAML keys keep the order they had when one class held every field.
    names = [field.name for field in attrs.fields(SftConfig)]
    assert names.index("eval_every") == names.index("seed") + 1
    assert names[-1] == "eval_max_tokens"


def test_every_problem_is_reported_at_once_loop_fields_first() -> None:
    with pytest.raises(ConfigurationError) as info:
        SftConfig(batch_size=0, test_size=0, lr_schedule="nope")  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith("invalid sft config: batch_size must be a whole number >= 1, got 0; ")
    assert text.index("lr_schedule:") < text.index("test_size must")
