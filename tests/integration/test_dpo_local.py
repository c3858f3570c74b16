"""DPO on the local torch engine: a tiny model learns a held-out preference."""

from __future__ import annotations

from pathlib import Path

import pytest

from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.core.training.dpo import DpoLoopConfig, run_dpo
from crucible_train.core.training.preference_data import PreferencePair, pairs_to_datums

from fakes import FakeMetricsSink

pytestmark = pytest.mark.torch


def _pairs(numbers: range) -> list[PreferencePair]:
    return [
        PreferencePair(
            prompt=({"role": "user", "content": f"Is {n} a number? Answer yes or no."},),
            chosen=({"role": "assistant", "content": "yes"},),
            rejected=({"role": "assistant", "content": "no"},),
        )
        for n in numbers
    ]


def test_held_out_preference_accuracy_rises(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
    from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient
    from crucible_train.core.renderers import get_renderer

    tokenizer = ByteLevelTokenizer(
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"], vocab_size=512
    )
    renderer = get_renderer("qwen3_instruct", tokenizer)
    train = pairs_to_datums(_pairs(range(0, 32)), renderer)
    test = pairs_to_datums(_pairs(range(100, 116)), renderer)
    client = LocalTorchTrainingClient(
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=16,
        intermediate_size=64,
        seed=0,
        checkpoint_dir=str(tmp_path / "checkpoints"),
    )
    sink = FakeMetricsSink()
    config = DpoLoopConfig(
        learning_rate=1e-2,
        lr_schedule="constant",
        batch_size=8,
        num_epochs=2,
        max_steps=8,
        eval_every=4,
        save_every=0,
    )
    try:
        result = run_dpo(
            config,
            training=client,
            train_pairs=train.datums,
            test_pairs=test.datums,
            metrics=sink,
            run_store=FilesRunStore(tmp_path),
        )
    finally:
        client.close()
    evals = [m for _, m in sink.rows if "test/dpo_accuracy" in m]
    assert evals[0]["test/dpo_accuracy"] == 0.0
    assert evals[-1]["test/dpo_accuracy"] >= 0.9
    assert evals[-1]["test/dpo_loss"] < evals[0]["test/dpo_loss"]
    assert evals[-1]["test/accuracy"] >= 0.9
    assert result.final_record is not None
    assert result.final_record.final
    assert (tmp_path / "dpo_reference.npz").is_file()
