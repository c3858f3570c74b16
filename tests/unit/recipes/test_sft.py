"""The ``train sft`` recipe: data, evaluators and bad input of run_sft_job; SftConfig."""

from __future__ import annotations

import json
import sys
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
from crucible_train.errors import (
    AdapterUnavailableError,
    ConfigurationError,
    DatasetFormatError,
    DatasetNotFoundError,
    InvalidDataError,
)
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
    with pytest.raises(InvalidDataError, match=r"empty\.jsonl: the dataset holds no rows"):
        run_sft_job(ctx, SftConfig(dataset=str(tmp_path / "empty.jsonl")))
    bad = _jsonl(tmp_path / "bad.jsonl", [_chat("a", "b"), {"text": "x"}])
    with pytest.raises(InvalidDataError) as info:
        run_sft_job(ctx, SftConfig(dataset=bad))
    assert str(info.value) == (
        f"{bad}:2: a conversation row needs column(s) 'messages'; the row has 'text' (set "
        "the column names if the dataset spells them differently: messages_key)"
    )
    (tmp_path / "broken.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}]}\n{x\n')
    with pytest.raises(DatasetFormatError, match=r"broken\.jsonl:2"):
        run_sft_job(ctx, SftConfig(dataset=str(tmp_path / "broken.jsonl")))


def _pc(prompt: Any, completion: Any) -> dict[str, Any]:
    return {"prompt": prompt, "completion": completion}


def test_prompt_completion_rows_train_on_the_completion_only(tmp_path: Path) -> None:
    ctx, client, sink, progress, _store = _ctx(tmp_path)
    rows = [_pc("Reverse: ab", "ba"), _pc([{"role": "user", "content": "Reverse: xy"}], "yx")]
    train = _jsonl(tmp_path / "train.jsonl", rows)
    test = _jsonl(tmp_path / "test.jsonl", [_pc("Reverse: cd", "dc")])
    config = SftConfig(
        dataset=train,
        test_dataset=test,
        batch_size=2,
        max_steps=1,
        eval_every=0,
        train_on_what="all_tokens",  # a conversational setting: not applied to these rows
    )
    run_sft_job(ctx, config)
    assert any(
        "prompt-completion rows: training on the completion only" in n for n in progress.notes
    )
    tokenizer = ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    trained = set()
    for batch in client.batches:
        for datum in batch.datums:
            targets = datum.loss_fn_inputs["target_tokens"].to_numpy()
            weights = datum.loss_fn_inputs["weights"].to_numpy()
            trained.add(
                tokenizer.decode([int(t) for t, w in zip(targets, weights, strict=True) if w])
            )
    assert trained == {"ba<|im_end|>", "yx<|im_end|>"}
    assert "test/nll" in _keys(sink)


def test_column_names_are_configurable(tmp_path: Path) -> None:
    ctx, client, *_ = _ctx(tmp_path)
    rows = [{"question": "Reverse: ab", "reply": "ba"}, {"question": "q", "reply": "a"}]
    train = _jsonl(tmp_path / "train.jsonl", rows)
    config = SftConfig(
        dataset=train, prompt_key="question", completion_key="reply", batch_size=2, max_steps=1
    )
    run_sft_job(ctx, config)
    chats = [{"chat": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    ctx2, client2, *_ = _ctx(tmp_path)
    chat = _jsonl(tmp_path / "chat.jsonl", chats)
    run_sft_job(ctx2, SftConfig(dataset=chat, messages_key="chat", batch_size=1, max_steps=1))
    assert len(client.trained) == len(client2.trained) == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            _pc("q", [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]),
            "train.jsonl:2: the last message of 'completion' must be the assistant's, got role "
            "'user'",
        ),
        (
            {"prompt": "q"},
            "train.jsonl:2: a prompt-completion row needs column(s) 'completion'; the row has "
            "'prompt' (set the column names if the dataset spells them differently: "
            "completion_key)",
        ),
        (
            _pc("q", 3),
            "train.jsonl:2: column 'completion' must be a string or a non-empty list of "
            "messages, got int",
        ),
    ],
)
def test_a_malformed_prompt_completion_row_names_the_line(
    tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    ctx, *_ = _ctx(tmp_path)
    train = _jsonl(tmp_path / "train.jsonl", [_pc("q", "a"), row])
    with pytest.raises(InvalidDataError) as info:
        run_sft_job(ctx, SftConfig(dataset=train, batch_size=1))
    assert str(info.value).endswith(message)


def test_datasets_of_another_format_are_refused_naming_the_keys(tmp_path: Path) -> None:
    ctx, *_ = _ctx(tmp_path)
    prefs = _jsonl(tmp_path / "prefs.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    expected = (
        "expected conversation rows ('messages') or prompt-completion rows ('prompt' + "
        "'completion'), got a preference row (columns 'prompt', 'chosen', 'rejected') (set "
        "messages_key, prompt_key, completion_key if the dataset spells them differently)"
    )
    with pytest.raises(InvalidDataError) as info:
        run_sft_job(ctx, SftConfig(dataset=prefs))
    assert str(info.value) == f"{prefs}:1: {expected}"
    # The held-out set is held to the same formats.
    train = _jsonl(tmp_path / "train.jsonl", [_chat("a", "b")])
    with pytest.raises(InvalidDataError) as info:
        run_sft_job(ctx, SftConfig(dataset=train, test_dataset=prefs, batch_size=1))
    assert str(info.value) == f"{prefs}:1: {expected}"
    prompts = _jsonl(tmp_path / "prompts.jsonl", [{"prompt": "q", "answer": "a"}])
    with pytest.raises(
        InvalidDataError, match=r"got a prompt-only row \(columns 'prompt', 'answer'\)"
    ):
        run_sft_job(ctx, SftConfig(dataset=prompts))


def test_a_dataset_directory_without_the_datasets_package_gives_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, *_ = _ctx(tmp_path)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    with pytest.raises(AdapterUnavailableError, match=r"pip install 'crucible-train\[datasets\]'"):
        run_sft_job(ctx, SftConfig(dataset=str(saved)))


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
        ("messages_key", ""),
        ("prompt_key", " "),
        ("completion_key", 3),
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
