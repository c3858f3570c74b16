"""Training loops over the ports: supervised fine-tuning, RL, DPO and on-policy distillation.

Every loop talks only to ports (TrainingClient, SamplingClient, MetricsSink, ...), records
resumable checkpoints in ``RUN_DIR/checkpoints.jsonl`` and reports progress through a
:class:`~crucible_train.core.training.progress.Progress`, so the same code runs on the local
torch engine and on Tinker.
"""
