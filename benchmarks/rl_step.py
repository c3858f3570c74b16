"""One RL iteration on the default model: the share spent sampling vs training, and the
sampled tokens/s, so an engine change can be measured against it.

The iteration is the default ``train rl`` one (``RlConfig()``: arithmetic prompts, 16 groups
of 8 samples, at most 8 tokens each, the task's learning rate; the reward
``correct + 0.1 * (format_ok - 1)`` through the batch rewarder) on the default
``local_torch`` model, built through the container as ``crucible-train train rl --fresh``
would build it (random weights from its seed: the timings, not the rewards, are the point).
``WARMUP`` iterations are run and left out, then ``ITERATIONS`` are measured; each figure is
the median over them of the loop's own metrics:

* ``sample_s`` (``time/sample_s``: weight snapshot + sampling), ``reward_s``, ``train_s``
  (``forward_backward`` + ``optim_step``), ``step_s``;
* ``sample_share`` and ``train_share``: ``sample_s / step_s`` and ``train_s / step_s``;
* ``sampled_tok_s`` (``time/sample_tokens_per_s``) and ``completion_tokens_mean``.

The anchor, measured in the same process: ``anchor_sample_s``, one bare ``sample`` call
per group on a sampler of the same weights (what sampling costs without the loop).
``sample_s + reward_s + train_s = step_s`` (the rest of the loop is inside them).

Prints ONE JSON line. Run from the repository root: ``python benchmarks/rl_step.py
[--iterations 5]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from crucible_train.container import build_container, run_store
from crucible_train.core.renderers import get_renderer
from crucible_train.core.rewards import build_rewards
from crucible_train.core.training.rewarding import BatchRewarder
from crucible_train.core.training.rl import run_rl
from crucible_train.recipes.arithmetic.env import arithmetic_reward_specs, arithmetic_rl_data
from crucible_train.recipes.rl import RlConfig
from crucible_train.types import SamplingParams

WARMUP = 1
ITERATIONS = 5


class Recorder:
    """A metrics sink keeping every logged row."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Ignored."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Keep the row."""
        self.rows.append(dict(metrics))

    def log_long_text(self, key: str, text: str) -> None:
        """Ignored."""

    def sync(self) -> None:
        """Nothing to send."""

    def get_url(self) -> str | None:
        """No URL."""
        return None

    def close(self, exit_code: int = 0) -> None:
        """Nothing to close."""


def measure(iterations: int) -> dict[str, Any]:
    """Run ``WARMUP + iterations`` default RL iterations; return the JSON line's fields."""
    import torch

    config = RlConfig(max_steps=WARMUP + iterations, save_every=0, eval_every=0)
    loop = config.loop_config()
    with tempfile.TemporaryDirectory() as tmp:
        container = build_container(
            overrides=[f"training.local_torch.checkpoint_dir={tmp}/ckpt", "metrics.sinks=[noop]"]
        )
        renderer = get_renderer(config_renderer(), container.tokenizer())
        dataset, _ = arithmetic_rl_data(
            renderer,
            max_operand=config.max_operand,
            groups_per_batch=config.groups_per_batch,
            group_size=config.group_size,
            seed=config.seed,
            eval_problems=1,
            max_tokens=loop.max_tokens,
            num_batches=config.max_steps,
        )
        reward = build_rewards(arithmetic_reward_specs(config.format_coef))
        training = container.training()
        sink = Recorder()
        run_rl(
            loop,
            training=training,
            dataset=dataset,
            rewarder=BatchRewarder(reward=reward, renderer=renderer),
            metrics=sink,
            run_store=run_store(f"{tmp}/run"),
        )
        # The anchor: the same sampling calls, bare, on a sampler of the final weights.
        sampler = training.create_sampling_client(
            training.save_weights_for_sampler("anchor").result()
        )
        params = SamplingParams(
            max_tokens=loop.max_tokens,
            temperature=loop.temperature,
            stop=renderer.get_stop_sequences(),
        )
        anchors = []
        for index in range(iterations):
            prompts = [g.prompt for g in dataset.get_batch(index)]  # type: ignore[attr-defined]
            start = time.perf_counter()
            futures = [sampler.sample(p, config.group_size, params) for p in prompts]
            for future in futures:
                future.result()
            anchors.append(time.perf_counter() - start)
    rows = [r for r in sink.rows if "time/step_s" in r][WARMUP:]

    def median(key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    step, sample, train, rewarding = (
        median("time/step_s"),
        median("time/sample_s"),
        median("time/train_s"),
        median("time/reward_s"),
    )
    return {
        "benchmark": "rl_step",
        "iterations": len(rows),
        "groups_per_batch": config.groups_per_batch,
        "group_size": config.group_size,
        "max_tokens": loop.max_tokens,
        "step_s": step,
        "sample_s": sample,
        "reward_s": rewarding,
        "train_s": train,
        "sample_share": sample / step,
        "train_share": train / step,
        "sampled_tok_s": median("time/sample_tokens_per_s"),
        "completion_tokens_mean": median("completion/tokens_mean"),
        "anchor_sample_s": statistics.median(anchors),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def config_renderer() -> str:
    """The renderer ``train rl`` uses by default (``train.renderer``)."""
    from crucible_train.recipes.settings import TrainSettings

    return TrainSettings().renderer


def main() -> None:
    """Parse ``--iterations`` and print the one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    args = parser.parse_args()
    print(json.dumps(measure(args.iterations)))


if __name__ == "__main__":
    main()
