"""Subprocess entry point of ``test_sft_resume``: a tiny SFT job on the local engine.

``python sft_driver.py RUN_DIR`` trains a very small model (float32, CPU, one thread) on the
arithmetic task with checkpoints every 4 steps and always passes ``resume=True``, so the
test can SIGKILL it at any moment and start it again until ``checkpoints.jsonl`` ends
with the final record.
"""

from __future__ import annotations

import sys
from pathlib import Path

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient
from crucible_train.core.evaluation.evaluators import EvaluatorRunner, NLLEvaluator
from crucible_train.core.renderers import get_renderer
from crucible_train.core.training.data import conversations_to_datums
from crucible_train.core.training.sft import run_sft
from crucible_train.recipes.arithmetic.evaluator import ArithmeticAccuracyEvaluator
from crucible_train.recipes.arithmetic.task import ArithmeticTask
from crucible_train.recipes.sft import SftConfig

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CONFIG = SftConfig(
    batch_size=8,
    max_steps=24,
    num_epochs=2,
    save_every=4,
    eval_every=8,
    warmup_steps=4,
    learning_rate=3e-3,
    max_operand=9,
)
MODEL = {
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 16,
    "intermediate_size": 64,
    "max_seq_length": 64,
    "num_threads": 1,
    "dtype": "float32",
    "device": "cpu",
    "seed": 0,
}


def main(run_dir: Path) -> None:
    """Run (or resume) the tiny job in ``run_dir``."""
    renderer = get_renderer(
        "qwen3_instruct", ByteLevelTokenizer(special_tokens=SPECIALS, vocab_size=512)
    )
    task = ArithmeticTask(max_operand=CONFIG.max_operand, seed=CONFIG.seed)
    train = conversations_to_datums(
        [{"messages": p.messages()} for p in task.problems("train")],
        renderer,
        train_on_what=CONFIG.train_on_what,
    )
    test_problems = task.problems("test", 4)
    test = conversations_to_datums(
        [{"messages": p.messages()} for p in test_problems],
        renderer,
        train_on_what=CONFIG.train_on_what,
    )
    training = LocalTorchTrainingClient(checkpoint_dir=str(run_dir / "checkpoints"), **MODEL)
    sink = FilesMetricsSink(run_dir=str(run_dir))
    runner = EvaluatorRunner(
        evaluators=[
            NLLEvaluator(datums=test.datums),
            ArithmeticAccuracyEvaluator(problems=test_problems, renderer=renderer, max_tokens=4),
        ],
        metrics=sink,
        every=CONFIG.eval_every,
    )
    try:
        run_sft(
            CONFIG,
            training=training,
            train_datums=train.datums,
            metrics=sink,
            run_store=FilesRunStore(run_dir),
            evaluators=runner,
            resume=True,
            data_metrics={"data/skipped": float(train.skipped)},
        )
    finally:
        sink.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
