"""Overrides that make a real `crucible-train train` run tiny (entrypoint and integration tests)."""

from __future__ import annotations

TINY_MODEL: tuple[str, ...] = (
    "training.local_torch.num_layers=1",
    "training.local_torch.hidden_size=32",
    "training.local_torch.num_heads=2",
    "training.local_torch.num_kv_heads=1",
    "training.local_torch.head_dim=16",
    "training.local_torch.intermediate_size=64",
    "training.local_torch.num_threads=1",
)
"""A one-layer, width-32 local model on one thread."""

TINY_SFT: tuple[str, ...] = (
    *TINY_MODEL,
    "metrics.sinks=[files]",
    "train.sft.batch_size=4",
    "train.sft.warmup_steps=1",
    "train.sft.test_size=4",
    "train.sft.eval_every=0",
)
"""A tiny model and an SFT run of small batches with no periodic evaluation."""
