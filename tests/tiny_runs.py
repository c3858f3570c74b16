"""One tiny local-engine shape, as settings and as `train` overrides, for tests that run it."""

from __future__ import annotations

TINY_SHAPE: dict[str, int] = {
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 16,
    "intermediate_size": 64,
}
"""A one-layer, width-32 model (the vocabulary and context are the caller's)."""

TINY_ENGINE: dict[str, int] = {**TINY_SHAPE, "vocab_size": 64, "max_seq_length": 32}
"""``TINY_SHAPE`` over a 64-token vocabulary and a 32-token context (adapter unit tests)."""

TINY_MODEL: tuple[str, ...] = (
    *(f"training.local_torch.{key}={value}" for key, value in TINY_SHAPE.items()),
    "training.local_torch.num_threads=1",
)
"""``TINY_SHAPE`` on one thread, as ``key=value`` overrides of a `train` run."""

TINY_SFT: tuple[str, ...] = (
    *TINY_MODEL,
    "metrics.sinks=[files]",
    "train.sft.batch_size=4",
    "train.sft.warmup_steps=1",
    "train.sft.test_size=4",
    "train.sft.eval_every=0",
)
"""A tiny model and an SFT run of small batches with no periodic evaluation."""
