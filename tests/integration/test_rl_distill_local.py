"""RL and on-policy distillation jobs on the local torch engine with a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.adapters.local_torch.sampling_client import (
    LocalTorchSamplingClient,
)
from crucible_train.adapters.local_torch.training_client import (
    LocalTorchTrainingClient,
)
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.checkpoints import CheckpointLog
from crucible_train.core.training.job import JobContext
from crucible_train.recipes.distill import DistillConfig, run_distill_job
from crucible_train.recipes.rl import RlConfig, run_rl_job
from tiny_runs import TINY_SHAPE

from fakes import FakeMetricsSink

pytestmark = [pytest.mark.torch, pytest.mark.slow]

TINY: dict[str, Any] = {**TINY_SHAPE, "max_seq_length": 128}


def _context(tmp_path: Path, name: str, **extra: Any) -> tuple[JobContext, FakeMetricsSink]:
    tokenizer = ByteLevelTokenizer(
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"],
        vocab_size=512,
    )
    run_dir = tmp_path / name
    training = LocalTorchTrainingClient(checkpoint_dir=str(run_dir / "checkpoints"), **TINY)
    sink = FakeMetricsSink()
    ctx = JobContext(
        training=training,
        renderer=get_renderer("qwen3_instruct", tokenizer),
        datasets=None,  # type: ignore[arg-type]  # the built-in environments read no files
        metrics=sink,
        run_store=FilesRunStore(run_dir),
        **extra,
    )
    return ctx, sink


def test_rl_job_runs_and_checkpoints(tmp_path: Path) -> None:
    ctx, sink = _context(tmp_path, "rl")
    config = RlConfig(
        max_steps=2,
        groups_per_batch=2,
        group_size=4,
        eval_every=2,
        eval_problems=4,
        save_every=1,
        max_operand=9,
        learning_rate=1e-3,
        kl_penalty_coef=0.05,
    )
    result = run_rl_job(ctx, config)
    assert result.steps_done == 2
    rows = [row for step, row in sink.rows if "reward/mean" in row]
    assert len(rows) == 2
    for key in ("reward/mean", "kl_sample_train_v1", "kl_sample_train_v2", "entropy", "lr"):
        assert key in rows[0]
    # The sampler is the policy itself, so sampled and trained logprobs agree at step 0.
    assert abs(float(rows[0]["kl_sample_train_v1"])) < 1e-3
    assert "test/accuracy" in result.last_metrics
    records = CheckpointLog(ctx.run_store).records()
    assert [(r.name, r.step) for r in records] == [("000001", 1), ("final", 2)]
    assert Path(records[-1].sampler_path or "").is_dir()
    json.dumps(result.last_metrics)


def test_distill_job_runs_with_a_teacher(tmp_path: Path) -> None:
    teacher = LocalTorchSamplingClient(seed=1, **TINY)
    ctx, sink = _context(tmp_path, "distill", teacher=teacher)
    config = DistillConfig(
        max_steps=2,
        groups_per_batch=2,
        group_size=2,
        eval_every=0,
        eval_problems=4,
        save_every=0,
        max_operand=9,
    )
    result = run_distill_job(ctx, config)
    assert result.steps_done == 2
    kls = [float(row["teacher_kl"]) for _, row in sink.rows if "teacher_kl" in row]
    assert len(kls) == 2
    assert all(kl == kl for kl in kls)  # finite, not NaN
    assert "test/accuracy" in result.last_metrics
