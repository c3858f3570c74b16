"""Our SFT, RL and DPO loops, unchanged, training through the Tinker adapters.

The server is a real skyrl-tx 0.3.0 (JAX on CPU) serving a tiny random Qwen3 with LoRA
rank 8; the loops are the ones ``crucible-train train`` runs on the local engine (see
``tests/integration/test_dpo_local.py`` and ``test_rl_distill_local.py``).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.core.training.checkpoints import CheckpointLog
from crucible_train.core.training.data import conversations_to_datums
from crucible_train.core.training.dpo import DpoLoopConfig, run_dpo
from crucible_train.core.training.job import JobContext
from crucible_train.core.training.preference_data import PreferencePair, pairs_to_datums
from crucible_train.core.training.sft import run_sft
from crucible_train.recipes.arithmetic.task import ArithmeticTask
from crucible_train.recipes.rl import RlConfig, run_rl_job
from crucible_train.recipes.sft import SftConfig

from fakes import FakeMetricsSink

pytestmark = pytest.mark.tinker_server


def _column(sink: FakeMetricsSink, key: str) -> list[tuple[int | None, float]]:
    return [(step, float(row[key])) for step, row in sink.rows if key in row]


def test_sft_five_steps_lower_the_train_nll(
    training_clients: Any, renderer: Any, tmp_path: Path
) -> None:
    # One batch of eight arithmetic problems, seen once per epoch: the train NLL is then a
    # function of the weights alone and must fall at every step (with a new batch per
    # step it also moves with the batch).
    config = SftConfig(
        batch_size=8,
        max_steps=5,
        num_epochs=5,
        learning_rate=1e-2,
        lr_schedule="constant",
        warmup_steps=0,
        eval_every=0,
        save_every=0,
        max_operand=9,
    )
    task = ArithmeticTask(max_operand=config.max_operand, seed=config.seed)
    train = conversations_to_datums(
        [{"messages": p.messages()} for p in task.problems("train")[:8]],
        renderer,
        train_on_what=config.train_on_what,
    )
    sink = FakeMetricsSink()
    result = run_sft(  # pipelined: step N+1 is submitted before step N's result is read
        config,
        training=training_clients(),
        train_datums=train.datums,
        metrics=sink,
        run_store=FilesRunStore(tmp_path),
    )
    nll = _column(sink, "train/nll")
    assert [step for step, _ in nll] == [0, 1, 2, 3, 4]
    values = [value for _, value in nll]
    assert all(math.isfinite(v) for v in values), values
    # A random model starts near ln(vocab) = 6.9 nats on the answer tokens.
    assert values[0] > 5.0, values
    for before, after in itertools.pairwise(values):
        assert after < before, values
    assert values[-1] < values[0] - 0.3, values
    assert result.steps_done == 5
    assert not result.interrupted
    final = result.final_record
    assert final is not None
    assert final.final
    assert (final.state_path or "").startswith("tinker://"), final
    assert (final.sampler_path or "").startswith("tinker://"), final
    assert [r.name for r in CheckpointLog(FilesRunStore(tmp_path)).records()] == ["final"]


def test_one_rl_iteration_with_importance_sampling(
    training_clients: Any, renderer: Any, tmp_path: Path
) -> None:
    sink = FakeMetricsSink()
    ctx = JobContext(
        training=training_clients(),
        renderer=renderer,
        datasets=None,  # type: ignore[arg-type]  # the built-in environment reads no files
        metrics=sink,
        run_store=FilesRunStore(tmp_path),
    )
    config = RlConfig(
        max_steps=1,
        groups_per_batch=2,
        group_size=4,
        max_tokens=4,
        eval_every=0,
        eval_problems=4,
        save_every=0,
        max_operand=9,
        learning_rate=1e-3,
        loss_fn="importance_sampling",
    )
    result = run_rl_job(ctx, config)
    assert result.steps_done == 1
    rows = [row for _, row in sink.rows if "reward/mean" in row]
    assert len(rows) == 1
    row = rows[0]
    for key in ("reward/mean", "kl_sample_train_v1", "kl_sample_train_v2", "entropy", "lr"):
        assert key in row, sorted(row)
    finite = {k: v for k, v in row.items() if isinstance(v, int | float)}
    assert all(math.isfinite(v) for v in finite.values()), finite
    # The rollouts were sampled from the weights being trained, so the sampler's logprobs
    # and the trainer's agree (the server samples and trains the same JAX model).
    assert abs(float(row["kl_sample_train_v1"])) < 1e-3, row
    assert -1.0 <= float(row["reward/mean"]) <= 1.0
    assert "test/accuracy" in result.last_metrics
    assert 0.0 <= result.last_metrics["test/accuracy"] <= 1.0
    records = CheckpointLog(ctx.run_store).records()
    assert [r.name for r in records] == ["final"]
    assert (records[-1].sampler_path or "").startswith("tinker://")


def _pairs() -> list[PreferencePair]:
    return [
        PreferencePair(
            prompt=({"role": "user", "content": f"What is {n} + 1?"},),
            chosen=({"role": "assistant", "content": str(n + 1)},),
            rejected=({"role": "assistant", "content": str(n + 2)},),
        )
        for n in range(4)
    ]


def test_dpo_custom_loss_goes_down_on_one_pair_set(
    training_clients: Any, renderer: Any, tmp_path: Path
) -> None:
    data = pairs_to_datums(_pairs(), renderer)
    n_pairs = len(data.datums) // 2
    assert n_pairs == 4
    config = DpoLoopConfig(
        # Adam moves every LoRA weight by about the learning rate per step; larger rates
        # overshoot on four pairs by the third step (2e-2: 0.693, 0.672, 0.674).
        learning_rate=3e-3,
        lr_schedule="constant",
        warmup_steps=0,
        beta=0.5,
        batch_size=n_pairs,  # every step sees the same four pairs
        num_epochs=3,
        max_steps=3,
        eval_every=1,
        save_every=0,
        reference_batch_size=8,
    )
    sink = FakeMetricsSink()
    result = run_dpo(
        config,
        training=training_clients(),
        train_pairs=data.datums,
        test_pairs=data.datums,
        metrics=sink,
        run_store=FilesRunStore(tmp_path),
    )
    losses = _column(sink, "dpo/loss")
    assert [step for step, _ in losses] == [0, 1, 2]
    values = [value for _, value in losses]
    # Step 0 runs on the reference weights: forward_backward_custom's logprobs equal the
    # reference's from forward, so the loss is exactly -log sigmoid(0).
    assert values[0] == pytest.approx(math.log(2), abs=1e-3), values
    assert values[1] < values[0], values
    assert values[2] < values[1], values
    evals = _column(sink, "test/dpo_loss")
    assert evals[0][1] == pytest.approx(math.log(2), abs=1e-3)
    assert evals[-1][1] < evals[0][1] - 0.02, evals
    assert result.final_record is not None
    assert result.final_record.final
