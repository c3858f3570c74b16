"""``train sft`` with a prompt-only ``test_dataset``: greedy answers scored with
``test_reward`` (``test/reward``, ``test/<label>``); bad test_reward specs are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.config import validate_settings
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.job import JobContext
from crucible_train.recipes.sft import SftConfig, run_sft_job
from crucible_train.types import TokensWithLogprobs

from fakes import FakeRunStore, FakeSamplingClient, FakeTrainingClient

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_a_prompt_only_test_dataset_is_scored_with_the_test_reward(tmp_path: Path) -> None:
    renderer = get_renderer(
        "qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    )
    stop = [int(t) for t in renderer.get_stop_sequences()]
    answer = [*renderer.tokenizer.encode("4", allow_special=False), *stop]
    sampler = FakeSamplingClient([TokensWithLogprobs(tokens=answer, stop_reason="stop")])
    store = FakeRunStore()
    ctx = JobContext(
        training=FakeTrainingClient(sampler=sampler),
        renderer=renderer,
        datasets=FilesDatasetStore(root=str(tmp_path)),
        metrics=store.metrics,
        run_store=store,
    )
    chats = [
        {"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]}
    ] * 4
    train = _jsonl(tmp_path / "train.jsonl", chats)
    test = _jsonl(
        tmp_path / "test.jsonl",
        [{"prompt": "2+2", "answer": "4"}, {"prompt": "1+2", "answer": "3"}],
    )
    config = SftConfig(
        dataset=train,
        test_dataset=test,
        test_reward=[{"name": "exact_match", "label": "exact"}, "token_f1"],
        batch_size=2,
        max_steps=2,
        eval_every=1,
        warmup_steps=0,
    )
    run_sft_job(ctx, config)
    tests = [row for _, row in store.metrics.rows if "test/reward" in row]
    assert len(tests) == 3
    assert tests[0] == {"test/reward": 1.0, "test/exact": 0.5, "test/token_f1": 0.5}


def test_a_bad_test_reward_is_a_configuration_problem() -> None:
    _, problems = validate_settings(SftConfig, {"test_reward": "exact"}, "train.sft")
    assert problems
    assert "train.sft" in problems[0]
    assert "test_reward" in problems[0]
    assert "valid names" in problems[0]
